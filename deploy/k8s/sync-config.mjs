// Copies deploy/nats/nats.conf into the ConfigMap of deploy/k8s/nats.yaml, so the two never
// drift (test/deploy.test.ts checks that they are the same). Run: node deploy/k8s/sync-config.mjs
import { readFileSync, writeFileSync } from 'node:fs';

const yamlFile = new URL('./nats.yaml', import.meta.url);
const conf = readFileSync(new URL('../nats/nats.conf', import.meta.url), 'utf8');
const yaml = readFileSync(yamlFile, 'utf8');
const head = '  nats.conf: |\n';
const start = yaml.indexOf(head) + head.length;
const end = yaml.indexOf('\n---\n', start);
if (start < head.length || end < 0) throw new Error('nats.yaml: no `nats.conf: |` block followed by ---');
const block = conf.replace(/\n$/, '').split('\n').map((l) => (l ? `    ${l}` : '')).join('\n');
writeFileSync(yamlFile, yaml.slice(0, start) + block + yaml.slice(end));
