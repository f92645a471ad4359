// Plays live HLS (hls.js) and DASH (dash.js) streams in headless Chromium,
// driven by playwright-core, and reports what happened.
//
// Usage: node play.mjs CHROMIUM WATCH_S TYPE SRC SHOT.png [TYPE SRC SHOT.png ...]
//   TYPE: hls | dash; SRC: absolute URL of index.m3u8 / index.mpd.
// The player page and the two player libraries are served by a small HTTP
// server started here on 127.0.0.1 (port chosen by the system), so the page
// and the streams are on different origins (CORS is exercised).
// For each stream, once playback started (currentTime > 0), it prints
// `STARTED TYPE` (so a caller can act during playback), watches for WATCH_S
// seconds, then prints one line `RESULT {json}` with the currentTime
// advance, the longest stall (wall time without advance), the video size
// and the fatal error (or null), and saves a screenshot of the video
// element. The caller judges; the exit code is non-zero only when the
// harness itself failed.
import { chromium } from 'playwright-core';
import { createServer } from 'node:http';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const [executablePath, watchArg, ...rest] = process.argv.slice(2);
const WATCH_S = Number(watchArg);
if (!executablePath || !(WATCH_S > 0) || rest.length === 0 || rest.length % 3 !== 0) {
  console.error('usage: node play.mjs CHROMIUM WATCH_S TYPE SRC SHOT.png [...]');
  process.exit(2);
}
const files = {
  '/player.html': [join(here, 'player.html'), 'text/html'],
  '/hls.min.js': [join(here, 'node_modules/hls.js/dist/hls.min.js'), 'text/javascript'],
  '/dash.all.min.js': [join(here, 'node_modules/dashjs/dist/modern/umd/dash.all.min.js'), 'text/javascript'],
};
const server = createServer((req, res) => {
  const path = new URL(req.url, 'http://x').pathname;
  const f = files[path];
  if (!f) { res.writeHead(404, { date: new Date().toUTCString() }); res.end(); return; }
  res.writeHead(200, { 'content-type': f[1], 'cache-control': 'no-store' });
  res.end(req.method === 'HEAD' ? undefined : readFileSync(f[0]));
});
await new Promise(r => server.listen(0, '127.0.0.1', r));
const base = `http://127.0.0.1:${server.address().port}`;

const profile = mkdtempSync(join(tmpdir(), 'os-chromium-profile-'));
let code = 0;
let ctx;
try {
  ctx = await chromium.launchPersistentContext(profile, {
    executablePath, headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
           '--disable-background-networking', '--disable-component-update', '--disable-sync',
           '--autoplay-policy=no-user-gesture-required',
           // Resolve nothing but loopback: no look-ups leave the machine.
           '--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE localhost, EXCLUDE 127.0.0.1'],
    viewport: { width: 800, height: 480 },
  });
  console.log(`chromium ${ctx.browser()?.version() ?? '?'}`);
  for (let i = 0; i < rest.length; i += 3) {
    const [type, src, shot] = rest.slice(i, i + 3);
    const page = await ctx.newPage();
    const failed = [];
    page.on('requestfailed', r => failed.push(`${r.url()} ${r.failure()?.errorText}`));
    page.on('console', m => { if (m.type() === 'error') console.log(`[${type} console]`, m.text().slice(0, 300)); });
    const result = { type, src, started: false };
    try {
      await page.goto(`${base}/player.html?type=${type}&src=${encodeURIComponent(src)}`);
      await page.waitForFunction(() => document.getElementById('v').currentTime > 0 || window.__state.fatal,
                                 null, { timeout: 30000 });
      const t0 = await page.evaluate(() => document.getElementById('v').currentTime);
      const w0 = Date.now();
      console.log(`STARTED ${type}`);
      // Sample currentTime every 200 ms: the longest wall-clock span without
      // any advance is the worst stall the viewer saw.
      let last = t0, lastAdvance = w0, maxStall = 0;
      while (Date.now() - w0 < WATCH_S * 1000) {
        await page.waitForTimeout(200);
        const t = await page.evaluate(() => document.getElementById('v').currentTime);
        const now = Date.now();
        if (t > last) { last = t; lastAdvance = now; }
        maxStall = Math.max(maxStall, (now - lastAdvance) / 1000);
      }
      const s = await page.evaluate(() => { const v = document.getElementById('v');
        const q = v.getVideoPlaybackQuality?.();
        return { t: v.currentTime, w: v.videoWidth, h: v.videoHeight, paused: v.paused, ready: v.readyState,
                 decoded: q?.totalVideoFrames, dropped: q?.droppedVideoFrames, ...window.__state }; });
      await page.locator('#v').screenshot({ path: shot });
      Object.assign(result, { started: true, engine: s.engine, start_time: t0, advanced_s: s.t - t0,
        wall_s: (Date.now() - w0) / 1000, max_stall_s: maxStall, width: s.w, height: s.h, paused: s.paused, ready_state: s.ready,
        decoded_frames: s.decoded, dropped_frames: s.dropped, fatal: s.fatal, played_cc: s.played_cc ?? null, errors: s.errors.slice(0, 10),
        failed_requests: failed.slice(0, 10), screenshot: shot });
    } catch (e) {
      Object.assign(result, { fatal: `harness: ${e.message}`, failed_requests: failed.slice(0, 10) });
    }
    console.log('RESULT ' + JSON.stringify(result));
    await page.close();
  }
} catch (e) {
  console.error('play.mjs:', e.message);
  code = 1;
} finally {
  if (ctx) await ctx.close();
  rmSync(profile, { recursive: true, force: true });
  server.close();
}
process.exit(code);
