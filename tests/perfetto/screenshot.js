// Open a trace in the Perfetto UI with headless Chromium, expand every track, take a screenshot
// and print the visible track names (one JSON array on stdout).
//
// usage: node screenshot.js URL PNG WAIT_FOR_TEXT [CHROMIUM]
//
// URL serves the UI, which loads the trace by itself (see replay/export/viewer.py). The script
// waits until WAIT_FOR_TEXT is on the page (the trace is loaded), clicks the UI's "expand all"
// button, and reads the track names from the track shells. Predicates stay trivial: an exception
// thrown inside the page is caught by the UI and shown as its error dialog.
'use strict';
const path = require('path');
const { chromium } = require(path.join(__dirname, 'node_modules', 'playwright-core'));

const [url, png, waitFor, executablePath = '/usr/bin/chromium'] = process.argv.slice(2);

(async () => {
  const browser = await chromium.launch({
    executablePath,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  try {
    const page = await browser.newPage({ viewport: { width: 1600, height: 1600 } });
    await page.goto(url, { waitUntil: 'load' });
    await page.waitForFunction((text) => document.body.innerText.includes(text), waitFor,
      { timeout: 60000 });
    await page.waitForTimeout(1500);
    const expand = page.getByText('unfold_more', { exact: true });
    if (await expand.count()) {
      await expand.first().click();
      await page.waitForTimeout(1500);
    }
    await page.screenshot({ path: png });
    const text = await page.evaluate(() => document.body.innerText);
    process.stdout.write(JSON.stringify(text.split('\n').map((s) => s.trim()).filter(Boolean)));
  } finally {
    await browser.close();
  }
})().catch((err) => {
  console.error(String(err && err.stack ? err.stack : err));
  process.exit(1);
});
