"""Label Studio's ML-backend protocol, the domain side: labeling configs (`config`), the projects
`/setup` connects and where their task data may come from (`projects`), fetching that data
(`fetch`), predictions under a time budget (`pending`, `predict`, `interactive`) and webhook
events (`events`). The HTTP routes are app/api/routes/labelstudio.py."""
