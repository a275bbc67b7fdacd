'use strict';
// MQTT.js client with a will, driven by tests/interop/interop_clients.py.
// argv[2] is JSON: {host, port, clientId, version (3|4), will: {topic, payload, qos, retain},
// timeout}. Prints "connected" after the CONNACK, then waits: the test kills the process
// (abnormal close, the broker must publish the will) or writes a line on stdin, which makes it
// disconnect cleanly (the broker must discard the will), print "done" and exit 0.
const mqtt = require('mqtt');

const opts = JSON.parse(process.argv[2]);
const fail = (why) => {
    process.stderr.write(`will.js: ${why}\n`);
    process.exit(1);
};
setTimeout(() => fail(`timeout after ${opts.timeout}s`), (opts.timeout || 20) * 1000).unref();

const client = mqtt.connect({
    host: opts.host,
    port: opts.port,
    clientId: opts.clientId,
    protocolVersion: opts.version || 4,
    protocolId: opts.version === 3 ? 'MQIsdp' : 'MQTT',
    clean: true,
    reconnectPeriod: 0,
    connectTimeout: 10000,
    will: {
        topic: opts.will.topic,
        payload: Buffer.from(opts.will.payload),
        qos: opts.will.qos || 0,
        retain: !!opts.will.retain,
    },
});
// once we disconnect, the broker closing its side (even with a reset) is not an error
let ending = false;
client.on('error', (err) => {
    if (!ending)
        fail(`error: ${err.message}`);
});
client.on('connect', () => {
    process.stdout.write('connected\n');
    process.stdin.once('data', () => {
        ending = true;
        client.end(false, () => {
            process.stdout.write('done\n');
            process.exit(0);
        });
    });
});
