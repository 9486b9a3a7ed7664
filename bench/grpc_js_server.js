// A minimal @grpc/grpc-js server for the benches: loadtest.v1 Hello/SayHello and Echo/Echo.
//
// Why: the load-generator bench needs a server that is not the bottleneck on one core, and the
// backend bench compares the Python reference server with it. Same .proto, loaded at run time.
//
//   NODE_PATH=.cache/grpc-js-server/node_modules node bench/grpc_js_server.js [--host 127.0.0.1] [--port 0]
//
// Prints "READY grpc <host>:<port>" (the reference backends' announcement) once it listens; stops on SIGTERM/SIGINT.
"use strict";

const path = require("path");
const grpc = require("@grpc/grpc-js");
const protoLoader = require("@grpc/proto-loader");

function option(name, fallback) {
  const index = process.argv.indexOf(name);
  return index >= 0 && index + 1 < process.argv.length ? process.argv[index + 1] : fallback;
}

const host = option("--host", "127.0.0.1");
const port = Number(option("--port", "0"));
const protoFile = path.join(__dirname, "..", "protos", "loadtest", "v1", "loadtest.proto");
const definition = protoLoader.loadSync(protoFile, { keepCase: true, longs: String, defaults: true });
const loadtest = grpc.loadPackageDefinition(definition).loadtest.v1;

const server = new grpc.Server();
server.addService(loadtest.Hello.service, {
  SayHello(call, callback) {
    callback(null, { message: `Hello, ${call.request.name || "world"}!` });
  },
});
server.addService(loadtest.Echo.service, {
  Echo(call, callback) {
    callback(null, { payload: call.request.payload, seq: 0 });
  },
});

const address = host.includes(":") ? `[${host}]:${port}` : `${host}:${port}`;
server.bindAsync(address, grpc.ServerCredentials.createInsecure(), (error, boundPort) => {
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
