{
  "port": 8125,
  "mgmt_port": 8126,
  "flushInterval": 5000,
  "backends": ["./backends/graphite"],
  "graphiteHost": "127.0.0.1",
  "graphitePort": 2003,
  "percentThreshold": [90, 99],
  "deleteIdleStats": true
}
