// Open an HTML report (pmu-replay report) from disk in headless Chromium, in light and dark
// colour schemes; screenshot each and print what the page shows as one JSON object on stdout:
// every request the page made, its charts (drawn size, axes, tick labels), the verdict text
// and the colours the page resolved for body text and background in each scheme.
//
// usage: node report_page.js REPORT.html PNG_PREFIX [CHROMIUM]
//   writes PNG_PREFIX-light.png and PNG_PREFIX-dark.png (full page)
'use strict';
const path = require('path');
const { pathToFileURL } = require('url');
const { chromium } = require(path.join(__dirname, 'node_modules', 'playwright-core'));

const [report, pngPrefix, executablePath = '/usr/bin/chromium'] = process.argv.slice(2);

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
  const out = { requests: [], schemes: {} };
  try {
    for (const scheme of ['light', 'dark']) {
      const page = await browser.newPage({ viewport: { width: 1200, height: 900 },
        colorScheme: scheme });
      page.on('request', (req) => out.requests.push(req.url()));
      const started = Date.now();
      await page.goto(pathToFileURL(path.resolve(report)).href, { waitUntil: 'load' });
      const loadMs = Date.now() - started;
      out.schemes[scheme] = { ...(await page.evaluate(describePage)), loadMs };
      await page.screenshot({ path: `${pngPrefix}-${scheme}.png`, fullPage: true });
      await page.close();
    }
  } finally {
    await browser.close();
  }
  process.stdout.write(JSON.stringify(out));
})().catch((err) => {
  console.error(String(err && err.stack ? err.stack : err));
  process.exit(1);
});
