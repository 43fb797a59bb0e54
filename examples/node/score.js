#!/usr/bin/env node
// A Node.js backend calling the scoring service: GetModelInfo, then Predict for each customer, then all
// of them at once over one PredictStream (a columnar batch). The contract is read at run time from the
// repository's proto/ folder with @grpc/proto-loader: no generated code to keep in sync.
//
//   npm ci                      # once, in examples/node
//   node score.js [--target 127.0.0.1:50051] [--customers customers.json] [--proto-root ../../proto]
//
// customers.json: [{"id": "...", "numbers": {"Feature": 1.5}, "categories": {"Feature": "level"}}];
// a feature left out is imputed by the model. The default file fits the quick start's model (RFM
// features of the bundled Online Retail sample). Prints one JSON document: the model version and, for
// both calls, each customer's segment. Exit code 1 with the gRPC status on failure.
'use strict';

const fs = require('fs');
const path = require('path');
const grpc = require('@grpc/grpc-js');
const protoLoader = require('@grpc/proto-loader');

const DEADLINE_MS = 10000;

function parseArgs(argv) {
  const args = {
    target: process.env.SCORING_TARGET || '127.0.0.1:50051',
    customers: path.join(__dirname, 'customers.json'),
    protoRoot: path.resolve(__dirname, '..', '..', 'proto'),
  };
  for (let i = 0; i < argv.length; i += 2) {
    const [flag, value] = [argv[i], argv[i + 1]];
    if (value === undefined) throw new Error(`${flag} needs a value`);
    if (flag === '--target') args.target = value;
    else if (flag === '--customers') args.customers = value;
    else if (flag === '--proto-root') args.protoRoot = value;
    else throw new Error(`unknown flag ${flag}`);
  }
  return args;
}

// The ScoringService client class, from proto/segmentation/v1/scoring.proto.
function loadService(protoRoot) {
  const definition = protoLoader.loadSync('segmentation/v1/scoring.proto', {
    includeDirs: [protoRoot],
    keepCase: true, // field names as in the proto (segment_id), like every other language's stubs
    longs: Number,
    enums: String,
    defaults: true, // zero values present (segment_id 0 is a real segment)
    oneofs: true,
  });
  return grpc.loadPackageDefinition(definition).segmentation.v1.ScoringService;
}

function deadline() {
  return new Date(Date.now() + DEADLINE_MS);
}

function unary(client, method, request) {
  return new Promise((resolve, reject) => {
    client[method](request, { deadline: deadline() }, (err, reply) => (err ? reject(err) : resolve(reply)));
  });
}

// One columnar batch from customer objects: one column per feature, NaN / "" where a customer lacks it.
function toBatch(customers, batchId) {
  const numericNames = [...new Set(customers.flatMap((c) => Object.keys(c.numbers || {})))];
  const categoricalNames = [...new Set(customers.flatMap((c) => Object.keys(c.categories || {})))];
  return {
    batch_id: batchId,
    ids: customers.map((c) => c.id || ''),
    numeric: numericNames.map((name) => ({
      name,
      values: customers.map((c) => (name in (c.numbers || {}) ? Number(c.numbers[name]) : NaN)),
    })),
    categorical: categoricalNames.map((name) => ({
      name,
      values: customers.map((c) => (c.categories || {})[name] || ''),
    })),
  };
}

// Sends the batches over one PredictStream; resolves with the responses, one per batch, in order.
function predictStream(client, batches) {
  return new Promise((resolve, reject) => {
    const responses = [];
    const call = client.PredictStream({ deadline: deadline() });
    call.on('data', (response) => responses.push(response));
    call.on('error', reject);
    call.on('end', () => resolve(responses));
    batches.forEach((batch) => call.write(batch));
    call.end();
  });
}

async function main() {
  const args = parseArgs(process.argv.slice(2));
  const customers = JSON.parse(fs.readFileSync(args.customers, 'utf8'));
  const ScoringService = loadService(args.protoRoot);
  const client = new ScoringService(args.target, grpc.credentials.createInsecure());
  try {
    const info = await unary(client, 'GetModelInfo', {});
    const names = info.segments.map((s) => s.name);

    const predict = [];
    for (const customer of customers) {
      const reply = await unary(client, 'Predict', { customer });
      const p = reply.prediction;
      predict.push({
        id: reply.id, segment_id: p.segment_id, segment_name: p.segment_name, distance: p.distance,
        confidence: p.confidence, outlier: p.outlier, version: reply.version,
      });
    }

    const [response] = await predictStream(client, [toBatch(customers, 'batch-1')]);
    if (response.batch_error) throw new Error(`batch refused: ${response.batch_error}`);
    const streamNames = response.segment_names.length ? response.segment_names : names;
    const rowErrors = new Map(response.row_errors.map((e) => [e.row, e.message]));
    const stream = customers.map((c, row) => ({
      id: c.id || '',
      segment_id: response.segment_id[row],
      segment_name: response.segment_id[row] >= 0 ? streamNames[response.segment_id[row]] : '',
      distance: response.distance[row],
      confidence: response.confidence[row],
      outlier: response.outlier[row],
      error: rowErrors.get(row) || '',
    }));

    const result = { model: info.model, version: info.version, segment_names: names, predict, stream };
    process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
  } finally {
    client.close();
  }
}

main().catch((err) => {
  const code = err.code !== undefined ? `${grpc.status[err.code]}: ` : '';
  process.stderr.write(`error: ${code}${err.details || err.message}\n`);
  process.exit(1);
});
