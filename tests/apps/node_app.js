// node-fastcgi (Debian's node-fastcgi) for the integration tests (tests/realapps.rs).
// Listens on the socket passed as fd 0 (server.listen() without arguments). It answers
// FCGI_GET_VALUES with FCGI_MPXS_CONNS=1 (multiplexing) and FCGI_MAX_CONNS/REQS 2000.
// Every response carries X-Conns (connections accepted so far).
// Routes by query parameter mode: env (method, url, HTTP version),
// echo (the request body back, X-Body-Length), error (500 from the application),
// stream (8 MiB in 64 KiB pieces; a request the gateway aborts is logged to argv[2]).
'use strict';
const fcgi = require('node-fastcgi');
const fs = require('fs');
const abortLog = process.argv[2];
let conns = 0;
const server = fcgi.createServer((req, res) => {
    const url = new URL(req.url, 'http://localhost');
    const mode = url.searchParams.get('mode') || 'env';
    res.setHeader('X-Conns', String(conns));
    if (mode === 'echo') {
        const chunks = [];
        req.on('data', (c) => chunks.push(c));
        req.on('end', () => {
            const body = Buffer.concat(chunks);
            res.setHeader('Content-Type', 'application/octet-stream');
            res.setHeader('X-Body-Length', String(body.length));
            res.end(body);
        });
    } else if (mode === 'error') {
        res.statusCode = 500;
        res.setHeader('Content-Type', 'text/plain');
        res.end('the application failed\n');
    } else if (mode === 'stream') {
        let aborted = false;
        req.on('aborted', () => {
            aborted = true;
            if (abortLog) fs.appendFileSync(abortLog, 'aborted ' + req.url + '\n');
        });
        res.setHeader('Content-Type', 'application/octet-stream');
        const piece = Buffer.alloc(65536, 120);
        let n = 0;
        const more = () => {
            while (!aborted && n < 128) {
                n++;
                if (!res.write(piece)) return res.once('drain', more);
            }
            res.end();
        };
        more();
    } else {
        res.setHeader('Content-Type', 'text/plain');
        res.end('METHOD=' + req.method + '\nURL=' + req.url + '\nHTTP=' + req.httpVersion + '\n');
    }
});
server.on('connection', () => { conns++; });
server.listen();
