// faceattr's independent edit judge: @vladmandic/human (BlazeFace detector + FaceRes description
// model) on tfjs's wasm backend, offline. Run by faceattr/judges/human.py as
//   node human.mjs NODE_MODULES_DIR
// Protocol (JSON lines): after loading it prints {"ready": true, ...} once; then for every request
//   {"id": 7, "width": W, "height": H, "rgb": "<base64 of H*W*3 bytes, RGB, row-major>"}
// it prints one answer
//   {"id": 7, "faces": N, "face": null | {"box": [x, y, w, h], "gender": "male"|"female"|"unknown",
//    "genderScore": 0..0.99, "age": years, "score": detection score}}   (the largest face)
// or {"id": 7, "error": "one line"}. Nothing else goes to stdout: logs go to stderr.
import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import path from 'node:path';
import readline from 'node:readline';

// human logs through console.log; stdout belongs to the protocol
console.log = console.error;
console.info = console.error;
console.warn = console.error;

function die(message) {
  process.stderr.write(`human.mjs: ${String(message).split('\n')[0]}\n`);
  process.exit(1);
}

// global fetch and Response, which the loader below relies on, came with node 18
if (Number(process.versions.node.split('.')[0]) < 18) die(`node ${process.versions.node} is too old: the judge needs 18 or later`);
const nodeModules = process.argv[2];
if (!nodeModules) die('usage: node human.mjs NODE_MODULES_DIR');
// by file path: human's package.json "exports" lacks the "./" its keys need, so subpaths do not resolve
const humanDir = path.join(path.resolve(nodeModules), '@vladmandic', 'human');
const wasmDir = path.join(path.resolve(nodeModules), '@tensorflow', 'tfjs-backend-wasm', 'dist');
let Human;
try {
  ({ Human } = createRequire(import.meta.url)(path.join(humanDir, 'dist', 'human.node-wasm.js')));
} catch (e) {
  die(`cannot load @vladmandic/human from ${nodeModules} (run \`make node_modules\`): ${e.message}`);
}

// tfjs loads models only through fetch over http(s); this host (RFC 2606 .invalid, never resolves)
// is answered from disk below, and every other URL is refused, so nothing leaves the machine.
const BASE = 'http://faceattr-judge.invalid/';
const ROOTS = { 'models/': path.join(humanDir, 'models'), 'wasm/': wasmDir };

globalThis.fetch = async (resource) => {
  const url = typeof resource === 'string' ? resource : (resource.url ?? String(resource));
  const prefix = Object.keys(ROOTS).find((p) => url.startsWith(BASE + p));
  if (!prefix) throw new Error(`offline judge: refusing to fetch ${url}`);
  const root = ROOTS[prefix];
  const file = path.resolve(root, decodeURIComponent(url.slice(BASE.length + prefix.length)));
  if (!file.startsWith(root + path.sep)) return new Response('', { status: 403, statusText: 'Forbidden' });
  try {
    const type = file.endsWith('.json') ? 'application/json'
      : file.endsWith('.wasm') ? 'application/wasm' : 'application/octet-stream';
    return new Response(await readFile(file), { status: 200, headers: { 'content-type': type } });
  } catch {
    return new Response('', { status: 404, statusText: `not found: ${file}` });
  }
};

const off = { enabled: false };
const config = {
  backend: 'wasm',
  wasmPath: `${BASE}wasm/`,
  wasmPlatformFetch: true, // the .wasm binaries come through the fetch above too
  modelBasePath: `${BASE}models/`,
  debug: false,
  async: false,
  warmup: 'none',
  cacheModels: false,
  cacheSensitivity: 0, // photos are unrelated: never reuse the previous frame's boxes or verdicts
  filter: off,
  gesture: off,
  body: off,
  hand: off,
  object: off,
  segmentation: off,
  face: {
    enabled: true,
    detector: { rotation: false, maxDetected: 20, minConfidence: 0.2, skipFrames: 0, skipTime: 0, return: false },
    mesh: off,
    attention: off,
    iris: off,
    emotion: off,
    gear: off, // reads women as men on our photos
    antispoof: off,
    liveness: off,
    // minConfidence 0: always say a gender (human's default 0.1 says 'unknown' below 0.1)
    description: { enabled: true, minConfidence: 0, skipFrames: 0, skipTime: 0 },
  },
};

const human = new Human(config);
// one compute thread whatever node offers (node 20 has no wasm threads): the machine has two cores
human.tf.env().set('WASM_HAS_MULTITHREAD_SUPPORT', false);
try {
  await human.init();
  if (human.tf.getBackend() !== 'wasm') die(`tfjs backend is ${human.tf.getBackend()}, not wasm`);
  await human.load();
} catch (e) {
  die(`cannot start human: ${e.message}`);
}
const missing = ['blazeface', 'faceres'].filter((m) => !human.models.loaded().includes(m));
if (missing.length) die(`models not loaded: ${missing.join(', ')} (from ${path.join(humanDir, 'models')})`);

function reply(obj) {
  process.stdout.write(`${JSON.stringify(obj)}\n`);
}

async function judge(request) {
  const { width, height, rgb } = request;
  if (!Number.isInteger(width) || !Number.isInteger(height) || width < 8 || height < 8) {
    throw new Error(`bad image size ${width}x${height}`);
  }
  if (typeof rgb !== 'string') throw new Error('no "rgb" field');
  const bytes = Buffer.from(rgb, 'base64');
  if (bytes.length !== width * height * 3) {
    throw new Error(`${bytes.length} bytes of RGB for a ${width}x${height} image (need ${width * height * 3})`);
  }
  const tensor = human.tf.tensor3d(new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.length), [height, width, 3], 'int32');
  let result;
  try {
    result = await human.detect(tensor);
  } finally {
    human.tf.dispose(tensor);
  }
  if (result.error) throw new Error(result.error);
  const faces = result.face;
  if (!faces.length) return { faces: 0, face: null };
  const largest = faces.reduce((a, b) => (b.box[2] * b.box[3] > a.box[2] * a.box[3] ? b : a));
  return {
    faces: faces.length,
    face: {
      box: largest.box,
      gender: largest.gender,
      genderScore: largest.genderScore,
      age: largest.age,
      score: largest.boxScore,
    },
  };
}

reply({ ready: true, backend: human.tf.getBackend(), human: human.version, tfjs: human.tf.version_core });

const lines = readline.createInterface({ input: process.stdin, crlfDelay: Infinity });
for await (const line of lines) {
  if (!line.trim()) continue;
  let request;
  try {
    request = JSON.parse(line);
  } catch {
    reply({ id: null, error: 'request is not JSON' });
    continue;
  }
  try {
    reply({ id: request.id ?? null, ...(await judge(request)) });
  } catch (e) {
    reply({ id: request.id ?? null, error: String(e.message ?? e).split('\n')[0] });
  }
}
