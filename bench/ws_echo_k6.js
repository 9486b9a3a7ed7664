// k6 (Go) as a peer in bench/ws_user_throughput.py: each VU opens one WebSocket and sends the bench's 64 B JSON
// echo message with an id, waiting for the reply carrying that id before the next send (one in flight per
// connection, as the Python clients do). Only replies that arrive between WINDOW_START and WINDOW_END (Unix
// seconds, passed by the bench) are counted, so start-up (script compile, connects) stays out of the count;
// the bench samples k6's CPU over the same window. k6 v1.1.0 ships this API as k6/experimental/websockets.
import { WebSocket } from 'k6/experimental/websockets';
import { Counter } from 'k6/metrics';

const counted = new Counter('counted');
const mismatched = new Counter('mismatched');
const START = Number(__ENV.WINDOW_START) * 1000;
const END = Number(__ENV.WINDOW_END) * 1000;
const PAYLOAD = 'e'.repeat(64);

export const options = {
  scenarios: {
    echo: {
      executor: 'per-vu-iterations',
      vus: Number(__ENV.VUS),
      iterations: 1,
      maxDuration: __ENV.DURATION,
    },
  },
  // A reply carrying another id than the one awaited fails the run (k6 exits 99; the bench stops).
  thresholds: { mismatched: ['count==0'] },
  summaryTrendStats: ['avg'],
};

export default function () {
  const ws = new WebSocket(__ENV.URL);
  let id = 0;
  const send = () => ws.send(JSON.stringify({ type: 'echo', id: ++id, payload: PAYLOAD }));
  ws.onopen = send;
  ws.onmessage = (event) => {
    const now = Date.now();
    if (JSON.parse(event.data).id !== id) mismatched.add(1);
    else if (now >= START && now < END) counted.add(1);
    if (now < END) send();
    else ws.close();
  };
  ws.onerror = (event) => console.error(`websocket error: ${event.error}`);
}

export function handleSummary(data) {
  const count = (name) => (data.metrics[name] ? data.metrics[name].values.count : 0);
  return { stdout: JSON.stringify({ calls: count('counted'), mismatched: count('mismatched') }) + '\n' };
}
