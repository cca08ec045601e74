// The admin's live metrics page (crm_backend/operator_page.py): polls the staff-only JSON of
// chat_ samples and plots, with uPlot, what docs/grafana-dashboard.json plots from Prometheus.
"use strict";
(function () {
  const root = document.getElementById("chat-metrics");
  const status = document.getElementById("chat-metrics-status");
  const url = root.dataset.url;
  const pollMs = Number(root.dataset.pollSeconds) * 1000;
  const KEEP = 180; // points per chart: 6 minutes at 2 s

  // {title, unit, series: (now, before, seconds) -> {name: value}}
  const charts = [
    { title: "Open sockets by room type", series: (now) => byLabel(now, "chat_open_sockets", "room_type") },
    { title: "Messages stored and deliveries, per second", series: (now, before, dt) => ({
        "messages stored": rate(now, before, dt, "chat_messages_stored_total"),
        "deliveries": rate(now, before, dt, "chat_deliveries_total"),
      }) },
    { title: "Delivery latency, store → last local write (ms)", series: (now, before) => percentiles(now, before, "chat_delivery_latency_seconds") },
    { title: "Database write, one message's INSERT (ms)", series: (now, before) => percentiles(now, before, "chat_database_write_seconds") },
    { title: "Channel-layer round trip, watchdog (ms)", series: (now, before) => percentiles(now, before, "chat_channel_layer_round_trip_seconds") },
    { title: "Handshakes per second, by result and close code", series: (now, before, dt) => rates(now, before, dt, "chat_handshakes_total", (l) => l.close_code ? `${l.result} ${l.close_code}` : l.result) },
    { title: "Closes for slowness and refused frames, per second", series: (now, before, dt) => ({
        ...rates(now, before, dt, "chat_slow_socket_closes_total", (l) => `slow: ${l.reason}`),
        ...rates(now, before, dt, "chat_rate_limited_frames_total", (l) => `rate limited: ${l.frame_type}`),
        ...rates(now, before, dt, "chat_channel_layer_watchdog_failures_total", (l) => `watchdog: ${l.problem}`),
      }) },
    { title: "Bytes waiting in sockets' send buffers (sampled)", series: (now) => ({
        "all sockets": total(now, "chat_socket_buffered_bytes"),
        "largest socket": total(now, "chat_socket_buffered_bytes_max"),
      }) },
  ];

  function total(samples, name, keep = () => true) {
    return (samples[name] || []).filter(([labels]) => keep(labels)).reduce((sum, [, value]) => sum + value, 0);
  }
  function byLabel(samples, name, label) {
    const out = {};
    for (const [labels, value] of samples[name] || []) out[labels[label]] = (out[labels[label]] || 0) + value;
    return out;
  }
  function rate(now, before, dt, name) {
    return before ? Math.max(0, total(now, name) - total(before, name)) / dt : null;
  }
  function rates(now, before, dt, name, nameOf) {
    const out = {};
    for (const [labels] of now[name] || []) {
      const key = nameOf(labels);
      const same = (l) => nameOf(l) === key;
      out[key] = before ? Math.max(0, total(now, name, same) - total(before, name, same)) / dt : null;
    }
    return out;
  }
  // p50 and p99 of what was observed between two polls, interpolated in its bucket (as
  // Prometheus' histogram_quantile), in milliseconds.
  function percentiles(now, before, name) {
    if (!before) return { p50: null, p99: null };
    const cumulative = (samples) => {
      const byLe = {};
      for (const [labels, value] of samples[`${name}_bucket`] || []) byLe[labels.le] = (byLe[labels.le] || 0) + value;
      return byLe;
    };
    const a = cumulative(now), b = cumulative(before);
    const bounds = Object.keys(a).map((le) => [le === "+Inf" ? Infinity : Number(le), a[le] - (b[le] || 0)]).sort((x, y) => x[0] - y[0]);
    const count = bounds.length ? bounds[bounds.length - 1][1] : 0;
    const quantile = (q) => {
      if (!count) return null;
      let lower = 0, below = 0;
      for (const [upper, seen] of bounds) {
        if (seen >= q * count) {
          if (upper === Infinity) return lower * 1000;
          return (lower + (upper - lower) * ((q * count - below) / Math.max(seen - below, 1))) * 1000;
        }
        lower = upper; below = seen;
      }
      return null;
    };
    return { p50: quantile(0.5), p99: quantile(0.99) };
  }

  const COLOURS = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf"];
  const drawn = charts.map((chart) => {
    const section = document.createElement("section");
    section.innerHTML = "<h2></h2>";
    section.querySelector("h2").textContent = chart.title;
    root.appendChild(section);
    return { chart, section, names: [], times: [], values: {}, plot: null };
  });

  function redraw(state) {
    const data = [state.times, ...state.names.map((name) => state.values[name])];
    if (state.plot && state.plot.series.length === state.names.length + 1) return state.plot.setData(data);
    if (state.plot) state.plot.destroy();
    state.plot = new uPlot({
      width: Math.max(420, state.section.clientWidth - 16), height: 220,
      series: [{}, ...state.names.map((name, n) => ({ label: name, stroke: COLOURS[n % COLOURS.length], spanGaps: false }))],
      axes: [{}, { size: 60 }],
    }, data, state.section);
  }

  let before = null, beforeAt = null;
  async function poll() {
    try {
      const response = await fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } });
      if (!response.ok) throw new Error(`HTTP ${response.status}`);
      const now = (await response.json()).samples, at = Date.now() / 1000;
      const dt = beforeAt ? at - beforeAt : 1;
      for (const state of drawn) {
        const values = state.chart.series(now, before, dt);
        for (const name of Object.keys(values)) {
          if (!state.names.includes(name)) { state.names.push(name); state.values[name] = state.times.map(() => null); }
        }
        state.times.push(at);
        for (const name of state.names) state.values[name].push(name in values ? values[name] : null);
        if (state.times.length > KEEP) { state.times.shift(); for (const name of state.names) state.values[name].shift(); }
        redraw(state);
      }
      before = now; beforeAt = at;
      status.textContent = `updated ${new Date().toLocaleTimeString()}`;
    } catch (error) {
      status.textContent = `could not read the metrics: ${error.message}`;
    }
  }
  poll();
  setInterval(poll, pollMs);
})();
