'use strict';
// MQTT.js publisher driven by tests/interop/interop_clients.py.
// argv[2] is JSON: {host, port, clientId, version (3|4), messages: [{topic, payload, qos, retain}],
// timeout}. Publishes the messages one after another, each waiting for its QoS flow to complete
// (PUBACK / PUBCOMP), disconnects cleanly, prints "done" and exits 0; exits 1 on error or timeout.
const mqtt = require('mqtt');

const opts = JSON.parse(process.argv[2]);
const fail = (why) => {
    process.stderr.write(`pub.js: ${why}\n`);
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
});
// once we disconnect, the broker closing its side (even with a reset) is not an error
let ending = false;
client.on('error', (err) => {
    if (!ending)
        fail(`error: ${err.message}`);
});

function publishFrom(i) {
    if (i === opts.messages.length) {
        ending = true;
        client.end(false, () => {
            process.stdout.write('done\n');
            process.exit(0);
        });
        return;
    }
    const m = opts.messages[i];
    client.publish(m.topic, m.payload, { qos: m.qos || 0, retain: !!m.retain }, (err) => {
        if (err)
            fail(`publish ${i}: ${err.message}`);
        publishFrom(i + 1);
    });
}
client.on('connect', () => publishFrom(0));
