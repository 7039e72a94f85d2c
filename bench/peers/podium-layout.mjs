// The Podium side of `compare` (bench/src/bin/compare): a @podium/layout on a plain
// node:http server composing four podlets into the same page as Oberon's.
//
// `node podium-layout.mjs CONFIG.json`; the harness writes the config:
//   port, parts (the parts server's origin), timeout_ms (every podlet's timeout),
//   critical (the part that is throwable: its failure is a 503, as in Oberon),
//   skeleton (the page's bytes around the four parts: five strings),
//   pages ({ "/bench": [delay_ms of part 1, …, part 4], … }).
// Each distinct (part, delay) is a podlet registered once, so Podium fetches and caches
// its manifest and fallback as usual; content is fetched for every request.
// BENCH_DEBUG=1 logs Podium's client and every failed page to the server's log.
import http from 'node:http';
import { readFileSync } from 'node:fs';
import Layout from '@podium/layout';
import { HttpIncoming } from '@podium/utils';

const config = JSON.parse(readFileSync(process.argv[2], 'utf8'));
const layout = new Layout({ name: 'benchLayout', pathname: '/', logger: process.env.BENCH_DEBUG ? console : undefined });
// The document is the skeleton itself (the same bytes as Oberon's page), not Podium's
// default template.
layout.view((incoming, body) => body);

const podlets = new Map();
function podlet(part, delay) {
    const key = `${part}:${delay}`;
    if (!podlets.has(key)) {
        // A delayed podlet's manifest points at delayed content (the delay is in the
        // path: Podium's client refuses content URLs with a query).
        const prefix = delay ? `/delay/${delay}` : '';
        podlets.set(
            key,
            layout.client.register({
                name: delay ? `part${part}Delay${delay}` : `part${part}`,
                uri: `${config.parts}${prefix}/podlet/${part}/manifest.json`,
                timeout: config.timeout_ms,
                throwable: part === config.critical,
            }),
        );
    }
    return podlets.get(key);
}
const pages = new Map(
    Object.entries(config.pages).map(([path, delays]) => [
        path,
        delays.map((delay, i) => podlet(i + 1, delay)),
    ]),
);

const server = http.createServer(async (req, res) => {
    const path = req.url.split('?')[0];
    const parts = pages.get(path);
    if (!parts) {
        res.statusCode = 404;
        res.end('not found\n');
        return;
    }
    const incoming = new HttpIncoming(req, res);
    try {
        await layout.process(incoming, { proxy: false });
        const fragments = await Promise.all(parts.map((p) => p.fetch(incoming)));
        const s = config.skeleton;
        let body = s[0];
        fragments.forEach((f, i) => {
            body += f.content + s[i + 1];
        });
        res.statusCode = 200;
        res.setHeader('content-type', 'text/html; charset=utf-8');
        res.end(layout.render(incoming, body));
    } catch (error) {
        if (process.env.BENCH_DEBUG) console.error(error);
        res.statusCode = 503;
        res.setHeader('content-type', 'text/plain');
        res.end('this page is temporarily unavailable\n');
    }
});
server.keepAliveTimeout = 60_000;
server.listen(config.port, '127.0.0.1', () => {
    console.log(`podium layout on http://127.0.0.1:${config.port}`);
});
