'use strict';
// MQTT.js at protocolVersion 5: a subscriber and a publisher. The publisher sends user
// properties, a response topic, correlation data and uses a topic alias; the subscriber prints
// what it received as one JSON line and exits 0. argv[2]: {host, port, timeout}
const mqtt = require('mqtt');
const opts = JSON.parse(process.argv[2]);
const fail = (why) => { process.stderr.write(`v5.js: ${why}\n`); process.exit(1); };
setTimeout(() => fail('timeout'), (opts.timeout || 20) * 1000).unref();
const base = { host: opts.host, port: opts.port, protocolVersion: 5, reconnectPeriod: 0 };
const sub = mqtt.connect({ ...base, clientId: 'js5-sub', properties: { topicAliasMaximum: 5 } });
const got = [];
sub.on('error', (e) => fail(`sub: ${e.message}`));
sub.on('message', (topic, payload, packet) => {
    got.push({ topic, payload: payload.toString(), props: packet.properties || {} });
    if (got.length === 2) {
        process.stdout.write(JSON.stringify(got) + '\n');
        sub.end(); pub.end();
        setTimeout(() => process.exit(0), 100);
    }
});
let pub;
sub.on('connect', () => sub.subscribe('js5/#', { qos: 1 }, (err) => {
    if (err) fail(`subscribe: ${err.message}`);
    pub = mqtt.connect({ ...base, clientId: 'js5-pub', properties: { topicAliasMaximum: 5 } });
    pub.on('error', (e) => fail(`pub: ${e.message}`));
    pub.on('connect', () => {
        const props = { userProperties: { a: '1', b: '2' }, responseTopic: 'js5/resp',
                        correlationData: Buffer.from('c-1'), topicAlias: 1 };
        pub.publish('js5/t', 'one', { qos: 1, properties: props }, (e) => {
            if (e) fail(`publish 1: ${e.message}`);
            // second message by alias only
            pub.publish('', 'two', { qos: 1, properties: { topicAlias: 1 } }, (e2) => {
                if (e2) fail(`publish 2: ${e2.message}`);
            });
        });
    });
}));
