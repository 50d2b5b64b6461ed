// Coaching in a real browser: headless Chromium through the dlpgate explicit
// proxy, trusting dlpgate's CA only through the NSS database `dlpgate ca
// install` made under $HOME. Run by test_coach.c (which starts nginx, the
// console and dlpgate, and checks the upstream and the console afterwards):
//   node coach_browser.mjs   with PLAYWRIGHT, PROXY, PAGE_URL, CARD in the environment
// Prints one JSON line: {"coach_event", "override_event"} (or fails with exit 1).
import { createRequire } from "node:module";

const require = createRequire(import.meta.url);
const { chromium } = require(process.env.PLAYWRIGHT);

const { PROXY, PAGE_URL, CARD } = process.env;
const fail = (msg) => {
  console.error(`coach_browser: ${msg}`);
  process.exit(1);
};

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    `--proxy-server=${PROXY}`,
    "--proxy-bypass-list=<-loopback>", // localhost goes through the proxy too
  ],
  env: { ...process.env }, // HOME: where the NSS database is
  timeout: 20000,
});
try {
  const page = await browser.newPage(); // a fresh profile: trust comes from $HOME/.pki/nssdb
  page.setDefaultTimeout(10000);

  const send = async () => {
    await page.goto(PAGE_URL);
    await page.fill("#card", `refund to ${CARD} please`);
    const [res] = await Promise.all([page.waitForNavigation(), page.click("#send")]);
    return res;
  };

  // 1. the card is stopped with a coach page
  let res = await send();
  const html = await page.content();
  if (res.status() !== 403) fail(`expected the coach page (403), got ${res.status()}: ${html}`);
  if (!(await page.textContent("h1")).includes("Check before you send this")) fail(`not a coach page: ${html}`);
  if (html.includes(CARD)) fail("the card is on the coach page");
  if (!html.includes("4111 **** **** 1111")) fail(`no masked sample: ${html}`);
  if (!/coach-policy\.lua:\d+/.test(html) || html.includes("/tmp/")) fail(`rule or a path: ${html}`);
  const coachEvent = (await page.textContent("#event")).trim();

  // 2. the justification goes through the page's own form
  await page.fill("#justification", "the customer asked for a refund to this card");
  res = (await Promise.all([page.waitForNavigation(), page.click("#proceed")]))[0];
  const done = await page.content();
  if (res.status() !== 200 || !done.includes("You may send it now")) fail(`override refused: ${res.status()} ${done}`);
  const overrideEvent = (await page.textContent("#event")).trim();

  // 3. the resend passes: the upstream answers
  res = await send();
  const body = await page.content();
  if (res.status() !== 200) fail(`resend not passed: ${res.status()} ${body}`);

  console.log(JSON.stringify({ coach_event: coachEvent, override_event: overrideEvent }));
} finally {
  await browser.close();
}
