#!/usr/bin/env node
// A client of the hardpointd management API in another language: Node.js with
// @grpc/grpc-js and @grpc/proto-loader, built at run time from the .proto files
// of the repository's proto/ folder and nothing else (no generated code, no
// reflection). Acceptance 7 of issue 3; driven by tests/interop/test_node_client.py.
//
//   node list_modules.js TARGET PROTO_DIR [--get NAME]...
//
// TARGET is a gRPC target such as unix:/run/hardpointd.sock. Calls ListModules
// and prints one JSON object on stdout:
//
//   {"modules": [ModuleStatus...], "get": [{"name": ..., "ok": true, "module": {...}}
//                                         | {"name": ..., "ok": false, "code": 5, "code_name": "NOT_FOUND", "details": ...}]}
//
// Field names are those of the .proto (keepCase), enums are their names
// ("MODULE_STATE_ACTIVE"), 64-bit integers are decimal strings. A failed
// ListModules prints the error on stderr and exits with 1; bad usage exits with 2.

'use strict';

const fs = require('fs');
const path = require('path');
const grpc = require('@grpc/grpc-js');
const protoLoader = require('@grpc/proto-loader');

const SERVICE = 'hardpoint.management.v1.ManagementService';
const DEADLINE_MS = 10000;

function usage(message) {
  process.stderr.write(`list_modules.js: ${message}\nusage: node list_modules.js TARGET PROTO_DIR [--get NAME]...\n`);
  process.exit(2);
}

/** Every .proto file under dir, relative to it (the import paths), sorted. */
function protoFiles(dir) {
  const out = [];
  const walk = (rel) => {
    for (const entry of fs.readdirSync(path.join(dir, rel), { withFileTypes: true })) {
      const child = rel ? `${rel}/${entry.name}` : entry.name;
      if (entry.isDirectory()) walk(child);
      else if (entry.isFile() && entry.name.endsWith('.proto')) out.push(child);
    }
  };
  walk('');
  return out.sort();
}

function lookup(root, dotted) {
  return dotted.split('.').reduce((node, part) => (node === undefined ? undefined : node[part]), root);
}

function call(client, method, request) {
  return new Promise((resolve, reject) => {
    client[method](request, { deadline: Date.now() + DEADLINE_MS }, (err, response) => (err ? reject(err) : resolve(response)));
  });
}

function errorFields(err) {
  return { code: err.code, code_name: grpc.status[err.code] || String(err.code), details: err.details || err.message };
}

async function main(argv) {
  const [target, protoDir, ...rest] = argv;
  if (!target || !protoDir) usage('TARGET and PROTO_DIR are required');
  const getNames = [];
  for (let i = 0; i < rest.length; i += 1) {
    if (rest[i] === '--get' && i + 1 < rest.length) getNames.push(rest[(i += 1)]);
    else usage(`unexpected argument ${JSON.stringify(rest[i])}`);
  }
  if (!fs.existsSync(protoDir) || !fs.statSync(protoDir).isDirectory()) usage(`${protoDir} is not a folder`);

  const files = protoFiles(protoDir);
  if (!files.length) usage(`no .proto files under ${protoDir}`);
  // google/protobuf/*.proto (descriptor, any) come with proto-loader; everything else from proto/ only.
  const definition = protoLoader.loadSync(files, {
    includeDirs: [path.resolve(protoDir)],
    keepCase: true,
    enums: String,
    longs: String,
    defaults: true,
    arrays: true,
    oneofs: true,
  });
  const Service = lookup(grpc.loadPackageDefinition(definition), SERVICE);
  if (typeof Service !== 'function') throw new Error(`${SERVICE} is not defined by the .proto files in ${protoDir}`);

  const client = new Service(target, grpc.credentials.createInsecure());
  try {
    let listed;
    try {
      listed = await call(client, 'ListModules', {});
    } catch (err) {
      const e = errorFields(err);
      process.stderr.write(`list_modules.js: ListModules on ${target} failed: ${e.code_name}: ${e.details}\n`);
      return 1;
    }
    const get = [];
    for (const name of getNames) {
      try {
        const response = await call(client, 'GetModule', { name });
        get.push({ name, ok: true, module: response.module });
      } catch (err) {
        get.push({ name, ok: false, ...errorFields(err) });
      }
    }
    process.stdout.write(`${JSON.stringify({ modules: listed.modules, get, protos: files })}\n`);
    return 0;
  } finally {
    client.close();
  }
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err) => {
    process.stderr.write(`list_modules.js: ${err && err.stack ? err.stack : err}\n`);
    process.exitCode = 1;
  },
);
