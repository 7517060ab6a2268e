// Test glue shared by the seed pages; it is not part of the seeds' code.
// The page is opened as  seedNNN.html?port=PORT&name=NAME : the seeds' hard-coded
// URL becomes WS_URL, and report() tells the page's own origin (the test's static
// server) about state changes: "open" (with the count of opens so far), "beat" (a
// heartbeat answer arrived) and "close".
const PARAMS = new URLSearchParams(location.search)
const PAGE_NAME = PARAMS.get('name') || 'page'
const WS_URL = 'ws://127.0.0.1:' + PARAMS.get('port') + '/ws/?name=' + encodeURIComponent(PAGE_NAME)
let OPENS = 0

function report (event) {
  if (event === 'open') { OPENS++ }
  const line = PAGE_NAME + ' ' + event + ' open=' + OPENS
  const log = document.getElementById('log')
  if (log) { log.textContent += line + '\n' }
  fetch('/report?page=' + encodeURIComponent(PAGE_NAME) + '&event=' + event + '&open=' + OPENS,
    { cache: 'no-store' }).catch(() => {})
}
