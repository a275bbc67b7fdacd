'use strict';
// MQTT.js subscriber driven by tests/interop/interop_clients.py.
// argv[2] is JSON: {host, port, clientId, version (3|4), topics: [filter...], qos, count, timeout}
// Prints "ready" once the SUBACK arrived, then one JSON line per message
// {topic, payload, qos, retain, dup}; exits 0 after `count` messages, 1 on error or timeout.
const mqtt = require('mqtt');

const opts = JSON.parse(process.argv[2]);
const out = (obj) => process.stdout.write(JSON.stringify(obj) + '\n');
const fail = (why) => {
    process.stderr.write(`sub.js: ${why}\n`);
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
let received = 0;
// once we disconnect, the broker closing its side (even with a reset) is not an error
let ending = false;
client.on('error', (err) => {
    if (!ending)
        fail(`error: ${err.message}`);
});
client.on('close', () => {
    if (received < opts.count)
        fail('connection closed');
});
client.on('message', (topic, payload, packet) => {
    out({ topic, payload: payload.toString('utf8'), qos: packet.qos, retain: packet.retain,
          dup: packet.dup });
    received++;
    if (received === opts.count) {
        // end() lets MQTT.js finish the QoS 2 handshake of the last message first
        ending = true;
        client.end(false, () => process.exit(0));
    }
});
client.on('connect', () => {
    client.subscribe(opts.topics, { qos: opts.qos }, (err, granted) => {
        if (err)
            fail(`subscribe: ${err.message}`);
        for (const g of granted) {
            if (g.qos === 128)
                fail(`subscription to ${g.topic} refused`);
        }
        out('ready');
        if (opts.count === 0) {
            ending = true;
            client.end(false, () => process.exit(0));
        }
    });
});
