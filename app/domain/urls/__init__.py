"""Fetching untrusted URLs safely: one policy, one fetcher (see fetcher.py for the sequence)."""

from app.domain.urls.content import check_image, sniff_image
from app.domain.urls.fetcher import Fetched, Resolver, SafeFetcher, system_resolver
from app.domain.urls.policy import UrlPolicy

__all__ = [
    "Fetched",
    "Resolver",
    "SafeFetcher",
    "UrlPolicy",
    "check_image",
    "sniff_image",
    "system_resolver",
]
