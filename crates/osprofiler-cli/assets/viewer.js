// OSProfiler trace viewer (osprofiler-rs). Self-contained: no network, no
// libraries. Trace data is only ever put on the page as text
// (textContent, attribute values), never parsed as markup.
//
// Data (the JSON block with id "trace-data"):
// {base_id, total_us, collapse_depth, total: report.info, stats,
//  nodes: [{d: depth, p: parent index or -1, e: end of subtree (exclusive),
//           s: start us, u: duration us, k: key detail or null,
//           trace_id, parent_id, info}]}
// Nodes are in pre-order, so a subtree is the index range [i, e): every
// walk below is a loop over that array, whatever the depth of the tree.
(function () {
  'use strict';

  var ROW_H = 26;
  var OVERSCAN = 12;
  var MAX_INDENT = 40;
  var INDENT_PX = 16;
  var PALETTE = ['#4e79a7', '#f28e2b', '#59a14f', '#b07aa1', '#76b7b2', '#edc948',
    '#9c755f', '#ff9da7', '#5f8fd1', '#8cd17d', '#d37295', '#86bcb6'];

  function $(id) { return document.getElementById(id); }

  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined && text !== null) e.textContent = String(text);
    return e;
  }

  function str(v) {
    if (v === null || v === undefined) return '';
    return typeof v === 'string' ? v : JSON.stringify(v);
  }

  function fmtMs(us) {
    var ms = us / 1000;
    if (us % 1000 === 0) return String(us / 1000) + ' ms';
    var a = Math.abs(ms);
    var digits = a < 10 ? 3 : a < 100 ? 2 : a < 1000 ? 1 : 0;
    return ms.toFixed(digits) + ' ms';
  }

  var data;
  try {
    data = JSON.parse($('trace-data').textContent);
  } catch (err) {
    var p = $('empty');
    p.hidden = false;
    p.textContent = 'The trace data could not be read: ' + err.message;
    return;
  }

  var nodes = Array.isArray(data.nodes) ? data.nodes : [];
  var n = nodes.length;
  var totalUs = Math.max(1, Number(data.total_us) || 0);
  var collapsed = new Uint8Array(n);
  var visible = new Int32Array(0);
  var visibleCount = 0;
  var selected = -1;
  // Filter state: null when no filter; else matched[i] = node matches,
  // kept[i] = it or a descendant matches.
  var matched = null;
  var kept = null;
  var keptChild = null;
  var savedCollapse = null;
  var haystacks = null;

  var scroller = $('scroller');
  var spacer = $('spacer');
  var rowsBox = $('rows');

  function info(i) { var x = nodes[i].info; return x && typeof x === 'object' ? x : {}; }
  function hasChildren(i) { return nodes[i].e > i + 1; }
  function errorOf(i) {
    var x = info(i).exception;
    return typeof x === 'string' && x !== 'None' ? x : '';
  }

  var colors = Object.create(null);
  var colorCount = 0;
  function colorFor(service) {
    var key = str(service);
    if (!(key in colors)) colors[key] = PALETTE[colorCount++ % PALETTE.length];
    return colors[key];
  }

  // ---- default collapse: the first `collapse_depth` levels are open ----
  var depthLimit = typeof data.collapse_depth === 'number' ? data.collapse_depth : 4;
  for (var i0 = 0; i0 < n; i0++) {
    if (nodes[i0].d >= depthLimit - 1 && hasChildren(i0)) collapsed[i0] = 1;
  }

  // ---- visible rows: one pass over the pre-order array ----
  function recompute() {
    var out = new Int32Array(n);
    var c = 0;
    var i = 0;
    while (i < n) {
      if (kept && !kept[i]) { i = nodes[i].e; continue; }
      out[c++] = i;
      i = collapsed[i] ? nodes[i].e : i + 1;
    }
    visible = out;
    visibleCount = c;
    spacer.style.height = (c * ROW_H) + 'px';
    render();
  }

  function makeRow(i) {
    var nd = nodes[i];
    var inf = info(i);
    var name = str(inf.name);
    var row = el('div', 'row grid');
    row.setAttribute('role', 'treeitem');
    row.setAttribute('aria-level', String(nd.d + 1));
    row.setAttribute('aria-selected', i === selected ? 'true' : 'false');
    row.dataset.index = String(i);
    if (typeof nd.trace_id === 'string') row.dataset.traceId = nd.trace_id;
    if (i === selected) row.classList.add('selected');
    var err = errorOf(i);
    if (err) row.classList.add('failed');
    if (matched && !matched[i]) row.classList.add('context');

    var c = el('div', 'c-name');
    c.style.paddingLeft = (4 + Math.min(nd.d, MAX_INDENT) * INDENT_PX) + 'px';
    // With a filter on, a node whose children all fail it has nothing to
    // expand.
    var expandable = hasChildren(i) && (!keptChild || keptChild[i]);
    if (expandable) {
      var open = !collapsed[i];
      var t = el('button', 'toggle', open ? '\u25BE' : '\u25B8');
      t.type = 'button';
      t.tabIndex = -1;
      t.setAttribute('aria-label', (open ? 'Collapse ' : 'Expand ') + name);
      t.setAttribute('aria-expanded', open ? 'true' : 'false');
      row.setAttribute('aria-expanded', open ? 'true' : 'false');
      c.appendChild(t);
    } else {
      c.appendChild(el('span', 'toggle-pad'));
    }
    if (nd.d > MAX_INDENT) c.appendChild(el('span', 'depth', 'depth ' + nd.d));
    c.appendChild(el('span', 'name', name));
    if (expandable && collapsed[i]) {
      var hidden = nd.e - i - 1;
      var count = el('span', 'count', String(hidden));
      count.title = hidden + ' nested span' + (hidden === 1 ? '' : 's');
      c.appendChild(count);
    }
    if (err) c.appendChild(el('span', 'err-badge', err));
    row.appendChild(c);

    var service = str(inf.service);
    row.appendChild(el('div', 'c-service', service));
    row.appendChild(el('div', 'c-project', str(inf.project)));
    row.appendChild(el('div', 'c-host', str(inf.host)));
    row.appendChild(el('div', 'c-dur num', fmtMs(nd.u || 0)));
    var detail = el('div', 'c-detail', nd.k === null || nd.k === undefined ? '' : str(nd.k));
    if (nd.k) detail.title = str(nd.k).slice(0, 2000);
    row.appendChild(detail);

    var wf = el('div', 'c-wf');
    var track = el('div', 'track');
    var bar = el('div', 'bar');
    bar.style.left = Math.min(100, (nd.s || 0) / totalUs * 100) + '%';
    bar.style.width = Math.min(100, (nd.u || 0) / totalUs * 100) + '%';
    bar.style.backgroundColor = colorFor(inf.service);
    bar.title = name + ': ' + fmtMs(nd.s || 0) + ' + ' + fmtMs(nd.u || 0);
    track.appendChild(bar);
    wf.appendChild(track);
    row.appendChild(wf);
    return row;
  }

  // ---- virtualized rendering: only the rows in view are in the DOM ----
  var framePending = false;
  function render() {
    framePending = false;
    var top = scroller.scrollTop;
    var height = scroller.clientHeight || 600;
    var first = Math.max(0, Math.floor(top / ROW_H) - OVERSCAN);
    var last = Math.min(visibleCount, Math.ceil((top + height) / ROW_H) + OVERSCAN);
    rowsBox.style.transform = 'translateY(' + (first * ROW_H) + 'px)';
    var frag = document.createDocumentFragment();
    for (var k = first; k < last; k++) frag.appendChild(makeRow(visible[k]));
    rowsBox.replaceChildren(frag);
  }
  function scheduleRender() {
    if (!framePending) {
      framePending = true;
      requestAnimationFrame(render);
    }
  }
  scroller.addEventListener('scroll', scheduleRender, { passive: true });
  window.addEventListener('resize', scheduleRender);

  function positionOf(i) {
    for (var k = 0; k < visibleCount; k++) if (visible[k] === i) return k;
    return -1;
  }

  function scrollToIndex(i) {
    var k = positionOf(i);
    if (k < 0) return;
    var top = k * ROW_H;
    var h = scroller.clientHeight;
    if (top < scroller.scrollTop) scroller.scrollTop = top;
    else if (top + ROW_H > scroller.scrollTop + h) scroller.scrollTop = top + ROW_H - h;
  }

  function toggle(i) {
    if (!hasChildren(i)) return;
    collapsed[i] = collapsed[i] ? 0 : 1;
    recompute();
  }

  // Opens every ancestor of i (clearing a filter that hides it).
  function reveal(i) {
    if (kept && !kept[i]) setFilter('');
    for (var p = nodes[i].p; p >= 0; p = nodes[p].p) collapsed[p] = 0;
    recompute();
  }

  function select(i, scroll) {
    selected = i;
    if (scroll) scrollToIndex(i);
    render();
    showDetails(i);
  }

  // ---- events ----
  rowsBox.addEventListener('click', function (ev) {
    var row = ev.target.closest('.row');
    if (!row) return;
    var i = Number(row.dataset.index);
    if (ev.target.closest('.toggle')) {
      toggle(i);
      return;
    }
    select(i, false);
  });
  rowsBox.addEventListener('dblclick', function (ev) {
    var row = ev.target.closest('.row');
    if (row && !ev.target.closest('.toggle')) toggle(Number(row.dataset.index));
  });

  scroller.addEventListener('keydown', function (ev) {
    if (!visibleCount) return;
    var k = selected >= 0 ? positionOf(selected) : -1;
    var target = -1;
    switch (ev.key) {
      case 'ArrowDown': target = visible[Math.min(visibleCount - 1, k + 1)]; break;
      case 'ArrowUp': target = visible[Math.max(0, k - 1)]; break;
      case 'PageDown': target = visible[Math.min(visibleCount - 1, k + Math.floor(scroller.clientHeight / ROW_H))]; break;
      case 'PageUp': target = visible[Math.max(0, k - Math.floor(scroller.clientHeight / ROW_H))]; break;
      case 'Home': target = visible[0]; break;
      case 'End': target = visible[visibleCount - 1]; break;
      case 'ArrowRight':
        if (selected >= 0 && hasChildren(selected)) {
          if (collapsed[selected]) toggle(selected); else target = selected + 1;
        }
        break;
      case 'ArrowLeft':
        if (selected >= 0) {
          if (hasChildren(selected) && !collapsed[selected]) toggle(selected);
          else if (nodes[selected].p >= 0) target = nodes[selected].p;
        }
        break;
      case 'Enter':
      case ' ':
        if (selected >= 0) toggle(selected);
        break;
      default:
        return;
    }
    ev.preventDefault();
    if (target >= 0) select(target, true);
  });

  $('expand-all').addEventListener('click', function () {
    collapsed.fill(0);
    recompute();
  });
  $('collapse-all').addEventListener('click', function () {
    for (var i = 0; i < n; i++) collapsed[i] = hasChildren(i) ? 1 : 0;
    recompute();
  });

  var errorCount = 0;
  for (var i1 = 0; i1 < n; i1++) if (errorOf(i1)) errorCount++;
  var nextError = $('next-error');
  nextError.disabled = errorCount === 0;
  nextError.addEventListener('click', function () {
    for (var step = 1; step <= n; step++) {
      var i = (selected + step + n) % n;
      if (errorOf(i)) {
        reveal(i);
        select(i, true);
        return;
      }
    }
  });

  // ---- filter: space-separated terms, all must match; `field:text`
  // restricts a term to name, service, project or host ----
  var FIELDS = ['name', 'service', 'project', 'host'];
  function haystack(i) {
    if (!haystacks) haystacks = new Array(n);
    var h = haystacks[i];
    if (h === undefined) {
      var inf = info(i);
      h = FIELDS.map(function (f) { return str(inf[f]).toLowerCase(); });
      haystacks[i] = h;
    }
    return h;
  }
  function parseQuery(q) {
    return q.toLowerCase().split(/\s+/).filter(Boolean).map(function (term) {
      var colon = term.indexOf(':');
      if (colon > 0) {
        var field = FIELDS.indexOf(term.slice(0, colon));
        if (field >= 0) return { field: field, text: term.slice(colon + 1) };
      }
      return { field: -1, text: term };
    });
  }
  function matches(i, terms) {
    var h = haystack(i);
    for (var t = 0; t < terms.length; t++) {
      var term = terms[t];
      if (term.field >= 0) {
        if (h[term.field].indexOf(term.text) < 0) return false;
      } else if (h[0].indexOf(term.text) < 0 && h[1].indexOf(term.text) < 0 &&
                 h[2].indexOf(term.text) < 0 && h[3].indexOf(term.text) < 0) {
        return false;
      }
    }
    return true;
  }
  function applyFilter(q) {
    var terms = parseQuery(q);
    var countBox = $('filter-count');
    if (!terms.length) {
      matched = kept = keptChild = null;
      if (savedCollapse) { collapsed.set(savedCollapse); savedCollapse = null; }
      countBox.textContent = '';
      recompute();
      return;
    }
    if (!savedCollapse) savedCollapse = collapsed.slice();
    matched = new Uint8Array(n);
    kept = new Uint8Array(n);
    keptChild = new Uint8Array(n);
    var hits = 0;
    for (var i = 0; i < n; i++) {
      if (!matches(i, terms)) continue;
      matched[i] = 1;
      hits++;
      // Keep and open the ancestors; stop at one already kept (its own
      // ancestors are too), so this is O(n) overall.
      for (var j = i; j >= 0 && !kept[j]; j = nodes[j].p) {
        kept[j] = 1;
        if (j !== i) collapsed[j] = 0;
        if (nodes[j].p >= 0) keptChild[nodes[j].p] = 1;
      }
    }
    countBox.textContent = hits + ' of ' + n + ' spans match';
    scroller.scrollTop = 0;
    recompute();
  }
  var filterBox = $('filter');
  var filterTimer = 0;
  filterBox.addEventListener('input', function () {
    clearTimeout(filterTimer);
    filterTimer = setTimeout(function () { applyFilter(filterBox.value); }, n > 20000 ? 200 : 60);
  });
  filterBox.addEventListener('keydown', function (ev) {
    if (ev.key === 'Enter') {
      clearTimeout(filterTimer);
      applyFilter(filterBox.value);
    }
  });
  function setFilter(q) {
    filterBox.value = q;
    applyFilter(q);
  }

  // ---- details panel ----
  function fieldRow(table, key, value) {
    var tr = el('tr');
    tr.appendChild(el('th', null, key));
    tr.appendChild(el('td', null, value));
    table.appendChild(tr);
  }

  function showDetails(i) {
    var box = $('details');
    var nd = nodes[i];
    var inf = info(i);
    var frag = document.createDocumentFragment();

    var title = el('h3', 'detail-title');
    title.appendChild(el('span', null, str(inf.name)));
    var err = errorOf(i);
    if (err) title.appendChild(el('span', 'err-badge', err));
    frag.appendChild(title);

    // Ancestors, outermost first, as buttons that select them.
    var chain = [];
    for (var p = nd.p; p >= 0; p = nodes[p].p) chain.push(p);
    if (chain.length) {
      var crumbs = el('div', 'crumbs');
      // Long chains: the root, an ellipsis, then the 4 nearest ancestors.
      var shown = chain.length > 6
        ? [chain[chain.length - 1], '\u2026'].concat(chain.slice(0, 4).reverse())
        : chain.slice().reverse();
      shown.forEach(function (a) {
        if (a === '\u2026') { crumbs.appendChild(el('span', 'muted', '\u2026')); return; }
        var b = el('button', null, str(info(a).name));
        b.type = 'button';
        b.title = 'Select ' + str(info(a).name);
        b.addEventListener('click', function () { reveal(a); select(a, true); });
        crumbs.appendChild(b);
        crumbs.appendChild(el('span', 'muted', '\u203A'));
      });
      crumbs.appendChild(el('span', null, str(inf.name)));
      frag.appendChild(crumbs);
    }

    if (nd.k) frag.appendChild(el('pre', 'key-detail', str(nd.k)));

    if (err) {
      var stop = null;
      Object.keys(inf).forEach(function (key) {
        if (key.indexOf('meta.raw_payload.') === 0 && /stop$/.test(key)) stop = inf[key];
      });
      var message = stop && stop.info && stop.info.message !== undefined ? str(stop.info.message) : '';
      frag.appendChild(el('div', 'error-box', message ? err + ': ' + message : err));
    }

    var table = el('table', 'fields');
    fieldRow(table, 'duration', fmtMs(nd.u || 0));
    fieldRow(table, 'start', fmtMs(nd.s || 0) + ' after the trace began');
    fieldRow(table, 'trace_id', str(nd.trace_id));
    fieldRow(table, 'parent_id', str(nd.parent_id));
    if (hasChildren(i)) fieldRow(table, 'nested spans', String(nd.e - i - 1));
    var payloads = [];
    Object.keys(inf).forEach(function (key) {
      if (key.indexOf('meta.raw_payload.') === 0) payloads.push(key);
      else fieldRow(table, key, str(inf[key]));
    });
    frag.appendChild(table);

    payloads.forEach(function (key) {
      var d = el('details', 'payload');
      d.open = true;
      d.appendChild(el('summary', null, key));
      d.appendChild(el('pre', null, JSON.stringify(inf[key], null, 2)));
      frag.appendChild(d);
    });

    box.replaceChildren(frag);
  }

  // ---- statistics ----
  var statRows = [];
  var stats = data.stats && typeof data.stats === 'object' ? data.stats : {};
  Object.keys(stats).forEach(function (name) {
    var s = stats[name] || {};
    var count = Number(s.count) || 0;
    var duration = Number(s.duration) || 0;
    statRows.push({ name: name, count: count, duration: duration, avg: count ? duration / count : 0 });
  });
  var statSort = { key: 'duration', desc: true };
  function renderStats() {
    var key = statSort.key;
    var dir = statSort.desc ? -1 : 1;
    statRows.sort(function (a, b) {
      var x = a[key];
      var y = b[key];
      return (x < y ? -1 : x > y ? 1 : 0) * dir || (a.name < b.name ? -1 : 1);
    });
    var body = document.createDocumentFragment();
    statRows.forEach(function (r) {
      var tr = el('tr');
      tr.title = 'Show only ' + r.name + ' spans';
      tr.appendChild(el('td', null, r.name));
      tr.appendChild(el('td', 'num', r.count));
      tr.appendChild(el('td', 'num', r.duration));
      tr.appendChild(el('td', 'num', r.avg.toFixed(r.avg < 10 ? 2 : 1)));
      tr.addEventListener('click', function () { setFilter('name:' + r.name); });
      body.appendChild(tr);
    });
    $('stats').tBodies[0].replaceChildren(body);
    Array.prototype.forEach.call(document.querySelectorAll('#stats th button'), function (b) {
      b.classList.toggle('sorted', b.dataset.sort === key);
    });
  }
  document.querySelector('#stats thead').addEventListener('click', function (ev) {
    var b = ev.target.closest('button');
    if (!b) return;
    var key = b.dataset.sort;
    statSort = { key: key, desc: statSort.key === key ? !statSort.desc : key !== 'name' };
    renderStats();
  });

  // ---- header ----
  var baseId = str(data.base_id);
  document.title = (baseId ? 'Trace ' + baseId : 'Trace') + ' \u00B7 OSProfiler';
  $('trace-id').textContent = baseId;
  var services = [];
  var hosts = Object.create(null);
  var hostCount = 0;
  for (var i2 = 0; i2 < n; i2++) {
    var inf2 = info(i2);
    var svc = str(inf2.service);
    if (!(svc in colors)) services.push(svc);
    colorFor(inf2.service);
    var h = str(inf2.host);
    if (!(h in hosts)) { hosts[h] = 1; hostCount++; }
  }
  var summary = $('summary');
  function stat(label, value, cls) {
    var s = el('span', cls);
    s.appendChild(el('b', null, value));
    s.appendChild(document.createTextNode(' ' + label));
    summary.appendChild(s);
  }
  stat(n === 1 ? 'span' : 'spans', n);
  stat('total', fmtMs(Number(data.total_us) || 0));
  stat(hostCount === 1 ? 'host' : 'hosts', hostCount);
  stat(errorCount === 1 ? 'error' : 'errors', errorCount, errorCount ? 'bad' : null);
  var legend = el('span', 'legend');
  services.slice(0, 12).forEach(function (s) {
    var item = el('span', 'legend-item');
    var sw = el('span', 'swatch');
    sw.style.backgroundColor = colors[s];
    item.appendChild(sw);
    item.appendChild(document.createTextNode(s || '(no service)'));
    legend.appendChild(item);
    legend.appendChild(document.createTextNode('  '));
  });
  if (services.length > 12) legend.appendChild(document.createTextNode('+' + (services.length - 12) + ' more'));
  summary.appendChild(legend);
  $('axis-mid').textContent = fmtMs(Math.round(totalUs / 2));
  $('axis-end').textContent = fmtMs(Number(data.total_us) || 0);

  if (!n) {
    var empty = $('empty');
    empty.hidden = false;
    empty.textContent = 'This trace has no spans.';
  }

  renderStats();
  recompute();
  if (n) select(0, false);

  // A small read-only handle for tests and the browser console.
  window.osprofilerViewer = Object.freeze({
    spans: n,
    visibleCount: function () { return visibleCount; },
    renderedRows: function () { return rowsBox.childElementCount; },
    ready: true
  });
})();
