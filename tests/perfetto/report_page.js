// Open HTML reports (pmu-replay report) from disk in headless Chromium, in light and dark
// colour schemes; screenshot each and print what the pages show as one JSON object on stdout,
// keyed by report path: every request the page made or tried to make, its charts (drawn size, axes, tick
// labels), the verdict text, the colours the page resolved for body text, background and chart
// text in each scheme, and how long the page took to load.
//
// usage: CHROMIUM=/usr/bin/chromium node report_page.js PNG_DIR REPORT.html...
//   writes PNG_DIR/<report name>-light.png and -dark.png (full page)
'use strict';
const path = require('path');
const { pathToFileURL } = require('url');
const { chromium } = require(path.join(__dirname, 'node_modules', 'playwright-core'));

const [pngDir, ...reports] = process.argv.slice(2);
const executablePath = process.env.CHROMIUM || '/usr/bin/chromium';

function describePage() {
  const charts = [...document.querySelectorAll('figure.chart')].map((fig) => {
    const svg = fig.querySelector('svg');
    const box = svg ? svg.getBoundingClientRect() : { width: 0, height: 0 };
    const axes = svg ? svg.querySelectorAll('g[id*="axes_"]') : [];
    const ticks = svg ? svg.querySelectorAll('g[id*="xtick_"] text, g[id*="ytick_"] text') : [];
    const marks = svg ? svg.querySelectorAll('path, use') : [];
    return {
      key: fig.dataset.chart,
      width: box.width,
      height: box.height,
      axes: axes.length,
      ticks: [...ticks].map((t) => t.textContent),
      marks: marks.length,
    };
  });
  const verdict = document.getElementById('verdict-text');
  const body = getComputedStyle(document.body);
  const tick = document.querySelector('figure.chart g[id*="xtick_"] text');
  return {
    title: document.title,
    verdict: verdict ? verdict.textContent : null,
    charts,
    colours: {
      text: body.color,
      background: body.backgroundColor,
      tick: tick ? getComputedStyle(tick).fill : null,
    },
    sections: [...document.querySelectorAll('section[id]')].map((s) => s.id),
  };
}

(async () => {
  const browser = await chromium.launch({
    executablePath,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  const out = {};
  try {
    for (const report of reports) {
      // requests made, and those the page's Content-Security-Policy blocked (a mail client may
      // not apply that policy: the page must not even try)
      const shown = { requests: [], blocked: [], schemes: {} };
      const stem = path.basename(report, '.html');
      for (const scheme of ['light', 'dark']) {
        const page = await browser.newPage({ viewport: { width: 1200, height: 900 },
          colorScheme: scheme });
        page.on('request', (req) => shown.requests.push(req.url()));
        page.on('console', (msg) => {
          if (msg.text().includes('Content Security Policy')) shown.blocked.push(msg.text());
        });
        const started = Date.now();
        await page.goto(pathToFileURL(path.resolve(report)).href, { waitUntil: 'load' });
        const loadMs = Date.now() - started;
        shown.schemes[scheme] = { ...(await page.evaluate(describePage)), loadMs };
        await page.screenshot({ path: path.join(pngDir, `${stem}-${scheme}.png`), fullPage: true });
        await page.close();
      }
      out[report] = shown;
    }
  } finally {
    await browser.close();
  }
  process.stdout.write(JSON.stringify(out));
})().catch((err) => {
  console.error(String(err && err.stack ? err.stack : err));
  process.exit(1);
});
