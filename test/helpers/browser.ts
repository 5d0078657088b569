/**
 * Headless Chromium for the dashboard and report tests: Debian's `chromium` (or CHROMIUM_PATH) driven by
 * playwright-core. `chromiumPath` is null when none is installed (the tests then skip, saying why).
 */
import { existsSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { chromium, type Browser, type ConsoleMessage, type Page } from 'playwright-core';

export const chromiumPath: string | null =
  [process.env.CHROMIUM_PATH, '/usr/bin/chromium', '/usr/bin/chromium-browser', '/usr/bin/google-chrome'].filter((p): p is string => Boolean(p)).find((p) => existsSync(p)) ?? null;

export function launchChromium(): Promise<Browser> {
  return chromium.launch({ executablePath: chromiumPath!, headless: true, args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'] });
}

/** Where the test run writes its screenshots: SEMISEG_SCREENSHOTS, else <tmp>/semiseg-screenshots. */
export function screenshotDir(): string {
  const dir = process.env.SEMISEG_SCREENSHOTS ?? join(tmpdir(), 'semiseg-screenshots');
  mkdirSync(dir, { recursive: true });
  return dir;
}

/** Collects console errors, uncaught page errors and failed requests of a page. */
export function watchErrors(page: Page): string[] {
  const errors: string[] = [];
  page.on('console', (m: ConsoleMessage) => {
    // (the readback warning is the tests' own getImageData, not the page's)
    if (m.type() === 'error' || (m.type() === 'warning' && !/Canvas2D: Multiple readback/.test(m.text()))) errors.push(`console.${m.type()}: ${m.text()}`);
  });
  page.on('pageerror', (e) => errors.push(`page error: ${e.message}`));
  page.on('requestfailed', (r) => errors.push(`request failed: ${r.url()} ${r.failure()?.errorText ?? ''}`));
  return errors;
}

/** Per chart id: its dataset count and whether its canvas has any non-transparent pixel. */
export async function chartState(page: Page): Promise<Record<string, { datasets: number; points: number; drawn: boolean }>> {
  return page.evaluate(() => {
    const w = globalThis as unknown as { semiseg: { charts: Record<string, { data: { datasets: { data: unknown[] }[] }; canvas: { width: number; height: number; getContext(k: '2d'): { getImageData(x: number, y: number, w: number, h: number): { data: Uint8ClampedArray } } } }> } };
    const out: Record<string, { datasets: number; points: number; drawn: boolean }> = {};
    for (const [id, chart] of Object.entries(w.semiseg.charts)) {
      if (!chart) continue;
      const c = chart.canvas;
      const pixels = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
      let drawn = false;
      for (let i = 3; i < pixels.length; i += 4) {
        if (pixels[i] !== 0) {
          drawn = true;
          break;
        }
      }
      out[id] = { datasets: chart.data.datasets.length, points: chart.data.datasets.reduce((a, d) => a + d.data.length, 0), drawn };
    }
    return out;
  });
}

/** Every <img class="overlay"> decoded: their natural sizes (an image that fails to decode throws). */
export async function decodedImages(page: Page): Promise<{ width: number; height: number }[]> {
  return page.evaluate(async () => {
    type Img = { decode(): Promise<void>; naturalWidth: number; naturalHeight: number };
    const doc = (globalThis as unknown as { document: { querySelectorAll(s: string): ArrayLike<Img> } }).document;
    const imgs = Array.from(doc.querySelectorAll('img.overlay'));
    await Promise.all(imgs.map((i) => i.decode()));
    return imgs.map((i) => ({ width: i.naturalWidth, height: i.naturalHeight }));
  });
}
