// The Tailor side of `compare` (bench/src/bin/compare): node-tailor composing the same
// four fragments into the same page as Oberon's.
//
// `node tailor-layout.cjs CONFIG.json`; the same config as podium-layout.mjs. Each
// fragment has the same timeout as every other system's parts, a `fallback-src`, and
// the critical part is Tailor's `primary` fragment. The templates are held in memory,
// but parsed for every request: that is how Tailor's `fetchTemplate` is meant to work
// (its default reads the file too), so we keep it.
const http = require('node:http');
const { readFileSync } = require('node:fs');
const Tailor = require('node-tailor');

const config = JSON.parse(readFileSync(process.argv[2], 'utf8'));

function template(delays) {
    const s = config.skeleton;
    let html = s[0];
    delays.forEach((delay, i) => {
        const part = i + 1;
        const query = delay ? `?delay_ms=${delay}` : '';
        const primary = part === config.critical ? ' primary' : '';
        html +=
            `<fragment src="${config.parts}/html/${part}${query}"` +
            ` fallback-src="${config.parts}/html/${part}/fallback"` +
            ` timeout="${config.timeout_ms}"${primary}></fragment>` +
            s[part];
    });
    return html;
}
const templates = new Map(
    Object.entries(config.pages).map(([path, delays]) => [path, template(delays)]),
);

const tailor = new Tailor({
    fetchTemplate: (request, parseTemplate) => {
        const html = templates.get(request.url.split('?')[0]);
        if (html === undefined) {
            const error = new Error('template not found');
            error.code = 1;
            error.presentable = 'template not found';
            return Promise.reject(error);
        }
        return parseTemplate(html);
    },
});

const server = http.createServer(tailor.requestHandler);
server.keepAliveTimeout = 60_000;
server.listen(config.port, '127.0.0.1', () => {
    console.log(`tailor layout on http://127.0.0.1:${config.port}`);
});
