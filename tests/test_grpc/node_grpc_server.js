// The native transport's conformance server on @grpc/grpc-js: loadtest.v1 Hello, Echo and Stream, steered by
// request metadata exactly as tests/test_grpc/grpc_conformance_server.py is (x-echo-*, x-status, x-message,
// x-sleep-ms; SayHello(name="cancelled") answers how many calls were cancelled while they waited).
//
//   NODE_PATH=.cache/grpc-js-server/node_modules node tests/test_grpc/node_grpc_server.js [--port 0] [--gzip]
//       [--tls-cert PEM --tls-key PEM [--tls-client-ca PEM]]
//
// Prints the test kit's ready line ("READY grpc <host>:<port>") once it listens; SIGTERM stops it gracefully.
"use strict";

const fs = require("fs");
const path = require("path");
const grpc = require("@grpc/grpc-js");
const protoLoader = require("@grpc/proto-loader");

function option(name, fallback) {
  const index = process.argv.indexOf(name);
  return index >= 0 && index + 1 < process.argv.length ? process.argv[index + 1] : fallback;
}

const host = option("--host", "127.0.0.1");
const port = Number(option("--port", "0"));
const protoFile = path.join(__dirname, "..", "..", "protos", "loadtest", "v1", "loadtest.proto");
const definition = protoLoader.loadSync(protoFile, { keepCase: true, longs: String, defaults: true });
const loadtest = grpc.loadPackageDefinition(definition).loadtest.v1;
const LIMIT = 64 * 1024 * 1024;
let cancelled = 0;

function settings(call) {
  const echo = new grpc.Metadata();
  let status = null;
  let message = "";
  let sleepMs = 0;
  for (const [key, values] of Object.entries(call.metadata.getMap())) {
    if (key.startsWith("x-echo-")) {
      for (const value of call.metadata.get(key)) echo.add(key, value);
    } else if (key === "x-status") {
      status = /^\d+$/.test(values) ? Number(values) : grpc.status[values];
    } else if (key === "x-message") {
      message = String(values);
    } else if (key === "x-sleep-ms") {
      sleepMs = Number(values);
    }
  }
  return { echo, status, message, sleepMs };
}

// Runs body(finish) after the metadata and the sleep; finish(reply) ends the call with the requested status.
function handle(call, callback, body) {
  const s = settings(call);
  let done = false;
  call.on("cancelled", () => {
    if (!done) cancelled += 1;
    done = true;
  });
  if (s.echo.getMap && Object.keys(s.echo.getMap()).length) call.sendMetadata(s.echo);
  setTimeout(() => {
    if (done) return;
    body((reply) => {
      done = true;
      const failed = s.status !== null && s.status !== 0;
      const error = failed ? { code: s.status, details: s.message, metadata: s.echo } : null;
      if (callback) {
        if (failed) callback(error);
        else callback(null, reply, s.echo);
      } else if (failed) {
        call.emit("error", error);
      } else {
        call.end(s.echo);
      }
    });
  }, s.sleepMs);
}

const server = new grpc.Server({
  "grpc.max_receive_message_length": LIMIT,
  "grpc.max_send_message_length": LIMIT,
  ...(process.argv.includes("--gzip") ? { "grpc.default_compression_algorithm": 2 } : {}),
});
server.addService(loadtest.Hello.service, {
  SayHello(call, callback) {
    if (call.request.name === "cancelled") return callback(null, { message: String(cancelled) });
    handle(call, callback, (finish) => finish({ message: `Hello, ${call.request.name}!` }));
  },
});
server.addService(loadtest.Echo.service, {
  Echo(call, callback) {
    handle(call, callback, (finish) => finish({ payload: call.request.payload, seq: 0 }));
  },
  EchoClientStream(call, callback) {
    let count = 0;
    let total = 0;
    call.on("data", (request) => {
      count += 1;
      total += request.payload.length;
    });
    call.on("end", () => handle(call, callback, (finish) => finish({ message_count: count, total_bytes: total })));
  },
  EchoBidi(call) {
    let seq = 0;
    call.on("data", (request) => call.write({ payload: request.payload, seq: seq++ }));
    call.on("end", () => handle(call, null, (finish) => finish()));
  },
});
server.addService(loadtest.Stream.service, {
  Subscribe(call) {
    handle(call, null, (finish) => {
      const { count, interval_ms: interval, payload_size: size } = call.request;
      let seq = 0;
      const next = () => {
        if (seq >= count) return finish();
        call.write({ seq: seq++, sent_at_unix_nanos: String(BigInt(Date.now()) * 1000000n), payload: Buffer.alloc(size, 120) });
        if (interval) setTimeout(next, interval);
        else setImmediate(next);
      };
      next();
    });
  },
});

let credentials = grpc.ServerCredentials.createInsecure();
const certFile = option("--tls-cert", null);
if (certFile) {
  const pair = [{ cert_chain: fs.readFileSync(certFile), private_key: fs.readFileSync(option("--tls-key", null)) }];
  const clientCa = option("--tls-client-ca", null);
  credentials = grpc.ServerCredentials.createSsl(clientCa ? fs.readFileSync(clientCa) : null, pair, Boolean(clientCa));
}

const address = host.includes(":") ? `[${host}]:${port}` : `${host}:${port}`;
server.bindAsync(address, credentials, (error, boundPort) => {
  if (error) {
    console.error(`error: cannot listen on ${address}: ${error.message}`);
    process.exit(2);
  }
  const shown = host.includes(":") ? `[${host}]` : host;
  console.log(`READY grpc ${shown}:${boundPort}`);
});

function stop() {
  server.tryShutdown(() => process.exit(0));
  setTimeout(() => process.exit(0), 1000).unref();
}
process.on("SIGTERM", stop);
process.on("SIGINT", stop);
