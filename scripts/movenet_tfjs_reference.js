// node tfjs_run.js MODEL_JSON RAW... : each RAW is "<h>x<w>.rgb" uint8 HWC; writes RAW.out.json
const tf = require('@tensorflow/tfjs');
const fs = require('fs');
const path = require('path');
async function main() {
  const [modelJson, ...raws] = process.argv.slice(2);
  const model = JSON.parse(fs.readFileSync(modelJson));
  const dir = path.dirname(modelJson);
  const specs = model.weightsManifest.flatMap(g => g.weights);
  const bufs = model.weightsManifest.flatMap(g => g.paths.map(p => fs.readFileSync(path.join(dir, p))));
  const all = Buffer.concat(bufs);
  const weightData = all.buffer.slice(all.byteOffset, all.byteOffset + all.byteLength);
  const handler = tf.io.fromMemory({ modelTopology: model.modelTopology, weightSpecs: specs, weightData, format: model.format, generatedBy: model.generatedBy, convertedBy: model.convertedBy, signature: model.signature });
  await tf.setBackend('cpu');
  const gm = await tf.loadGraphModel(handler);
  for (const raw of raws) {
    const m = path.basename(raw).match(/(\d+)x(\d+)/);
    const h = +m[1], w = +m[2];
    const px = fs.readFileSync(raw);
    const x = tf.tensor(Int32Array.from(px), [1, h, w, 3], 'int32');
    const t0 = Date.now();
    const y = await gm.executeAsync(x);
    const out = Array.isArray(y) ? y[0] : y;
    fs.writeFileSync(raw + '.out.json', JSON.stringify({ shape: out.shape, data: Array.from(out.dataSync()) }));
    console.log(raw, out.shape, Date.now() - t0, 'ms');
  }
}
main().catch(e => { console.error(e); process.exit(1); });
