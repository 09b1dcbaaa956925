"""The JavaScript the bot runs in SII's pages, as data (each constant is one ``frame.evaluate`` body).

Labels are folded the same way as ``sii_bot.html.fold`` (no accents, lower case, one space), so the
labels in ``sii_bot.driver.controls.Labels`` match whatever markup SII uses around them.
"""

__all__ = ["JS_CLICK_CONTROL", "JS_FILL", "JS_MARK_CHECKBOX", "JS_READ_BOXES", "JS_SET_BOXES", "JS_SET_CHECKBOXES", "JS_SNAPSHOT"]

# The page scripts' shared helpers: how a label is folded (no accents, lower case, one space), what
# counts as visible, a control's label, and which elements are controls (links and buttons).
_JS_LABEL_HELPERS = r"""
  const fold = s => (s || '').normalize('NFD').replace(/[\u0300-\u036f]/g, '').toLowerCase()
      .replace(/[-_\u00a0]/g, ' ').replace(/\s+/g, ' ').trim();
  const visible = el => !!(el.offsetWidth || el.offsetHeight || el.getClientRects().length);
  const labelOf = el => {
    if (el.tagName === 'INPUT') return fold(el.value || el.alt || el.title);
    let text = fold(el.innerText || el.textContent);
    if (!text) { const img = el.querySelector('img'); text = fold((img && (img.alt || img.title)) || el.title); }
    return text;
  };
  const CONTROLS = 'a, button, input[type="submit" i], input[type="button" i], input[type="image" i]';
"""

# Everything a wait needs to decide, in one round trip per frame: the markup, the readiness, the names
# of the non-hidden inputs and the labels of the visible controls (found as JS_CLICK_CONTROL finds
# them). Separate lookups cost a Python -> driver -> browser round trip each, several per poll.
JS_SNAPSHOT = (
    r"""
() => {
  const root = document.documentElement;
  if (!root) return ['', document.readyState, [], []];
"""
    + _JS_LABEL_HELPERS
    + r"""
  const fields = Array.from(document.querySelectorAll('input[name]:not([type="hidden" i])'))
      .map(i => i.name.toUpperCase());
  const controls = Array.from(document.querySelectorAll(CONTROLS)).filter(visible).map(labelOf);
  return [root.outerHTML, document.readyState, fields, controls];
}
"""
)

# JavaScript run in the page to find a control by its visible label and click it.
JS_CLICK_CONTROL = (
    r"""
([labels, rowRut, exactOnly]) => {
"""
    + _JS_LABEL_HELPERS
    + r"""
  const normRut = s => (s || '').replace(/\./g, '').replace(/\s/g, '').toUpperCase();
  let scope = document;
  if (rowRut) {
    // The innermost row whose text (or hidden RUT fields) names this RUT.
    const [body, dv] = rowRut.split('-');
    // Digit boundaries: 1.111.111-1 must not match inside 11.111.111-1.
    const whole = new RegExp('(^|[^0-9])' + body + '-' + dv + '($|[^0-9K])');
    const rows = Array.from(document.querySelectorAll('tr')).filter(tr => !tr.querySelector('tr'));
    const match = rows.find(tr => {
      // Dots out, spaces kept (they are the boundaries between a RUT and the next cell's text).
      const text = (tr.innerText || tr.textContent || '').replace(/\./g, '').replace(/\s*-\s*/g, '-').toUpperCase();
      if (whole.test(text)) return true;
      const cells = Array.from(tr.querySelectorAll('td,th')).map(td => normRut(td.innerText || td.textContent));
      for (let i = 0; i + 1 < cells.length; i++) if (cells[i] === body && cells[i + 1] === dv) return true;
      const hidden = tr.querySelector('input[name="RUT_USU" i]');
      return !!(hidden && hidden.value === body);
    });
    if (!match) return null;
    scope = match;
  }
  const els = Array.from(scope.querySelectorAll(CONTROLS)).filter(visible);
  const wanted = labels.map(fold);
  const pick = (test) => {
    for (const w of wanted) for (const el of els) if (test(labelOf(el), w)) return el;
    return null;
  };
  let el = pick((l, w) => l === w);
  if (!el && !exactOnly) el = pick((l, w) => l.startsWith(w + ' ') || l.endsWith(' ' + w));
  if (!el && rowRut && els.length === 1) el = els[0];
  if (!el) return null;
  const label = labelOf(el);
  // The element's own activation (onclick handlers, the submit button's name=value in the form data,
  // the link's href), without Playwright's pointer machinery: ~20 ms less per click, no scrolling.
  el.click();
  return label;
}
"""
)

# Finds a checkbox by name (any case), else by the label text around it (its <label>, row or parent).
_JS_FIND_CHECKBOX = r"""
  const findBox = (boxes, name, label) => {
    const byName = boxes.find(b => (b.name || '').toUpperCase() === name.toUpperCase());
    if (byName) return byName;
    const want = fold(label);
    return boxes.find(b => {
      const holder = b.closest('label') || b.closest('tr') || b.parentElement;
      const text = fold(holder ? (holder.innerText || holder.textContent) : '');
      return text === want || text.includes(want);
    });
  };
"""

# Finds a checkbox (as above) and tags it for a locator.
JS_MARK_CHECKBOX = (
    r"""
([name, label, token]) => {
"""
    + _JS_LABEL_HELPERS
    + _JS_FIND_CHECKBOX
    + r"""
  const box = findBox(Array.from(document.querySelectorAll('input[type="checkbox" i]')), name, label);
  if (!box) return null;
  box.setAttribute('data-siibot', token);
  return box.name || '';
}
"""
)

# Fills non-hidden inputs by name (any case) like a user typing would end: focus, value, then the
# input and change events the page's scripts listen to. Returns the names it did not find.
JS_FILL = r"""
(values) => {
  const missing = [];
  for (const [name, value] of Object.entries(values)) {
    const input = Array.from(document.querySelectorAll('input:not([type="hidden" i])'))
        .find(i => (i.name || '').toUpperCase() === name.toUpperCase());
    if (!input) { missing.push(name); continue; }
    input.focus();
    input.value = value;
    input.dispatchEvent(new Event('input', {bubbles: true}));
    input.dispatchEvent(new Event('change', {bubbles: true}));
  }
  return missing;
}
"""

# Sets checkboxes (found as above) with a click when the state must change, so the page's own
# handlers run, then every other checkbox off. Returns [names not found, names whose state did not stick].
JS_SET_CHECKBOXES = (
    r"""
([wanted, othersOff]) => {
"""
    + _JS_LABEL_HELPERS
    + _JS_FIND_CHECKBOX
    + r"""
  const boxes = Array.from(document.querySelectorAll('input[type="checkbox" i]'));
  const used = new Set();
  const missing = [], stuck = [];
  const set = (box, value, name) => {
    if (box.checked !== value) box.click();
    if (box.checked !== value) stuck.push(name);
  };
  for (const [name, label, value] of wanted) {
    const box = findBox(boxes, name, label);
    if (!box) { missing.push(name); continue; }
    used.add(box);
    set(box, value, name);
  }
  if (othersOff) for (const box of boxes) if (!used.has(box) && box.name && box.checked) set(box, false, box.name);
  return [missing, stuck];
}
"""
)

# Sets the checkboxes the page reader identified (``sii_bot.screens.permission_boxes``), each found by
# its own name and value attribute (names compared in any case), with a click when the state must
# change so the page's own handlers run. ``othersOff``: every other named checkbox is unticked too
# (a new user's form); otherwise the others are left exactly as they are (an edit screen: attributes
# the firm does not manage). Returns [names not found, names whose state did not stick].
JS_SET_BOXES = r"""
([wanted, othersOff]) => {
  const boxes = Array.from(document.querySelectorAll('input[type="checkbox" i]'));
  const used = new Set();
  const missing = [], stuck = [];
  const set = (box, value, name) => {
    if (box.checked !== value) box.click();
    if (box.checked !== value) stuck.push(name);
  };
  for (const [name, value, checked] of wanted) {
    const named = boxes.filter(b => (b.name || '').toUpperCase() === name.toUpperCase() && !used.has(b));
    // Several checkboxes may share a name and differ by value: the value decides.
    const box = named.find(b => (b.getAttribute('value') || '') === value) || (named.length === 1 ? named[0] : null);
    if (!box) { missing.push(name); continue; }
    used.add(box);
    set(box, checked, name);
  }
  if (othersOff) for (const box of boxes) if (!used.has(box) && box.name && box.checked) set(box, false, box.name);
  return [missing, stuck];
}
"""

# The live state (the ``checked`` property, which the page's scripts may have set after loading) of
# checkboxes found as in JS_SET_BOXES; null for one that is not in this frame.
JS_READ_BOXES = r"""
(wanted) => {
  const boxes = Array.from(document.querySelectorAll('input[type="checkbox" i]'));
  return wanted.map(([name, value]) => {
    const named = boxes.filter(b => (b.name || '').toUpperCase() === name.toUpperCase());
    const box = named.find(b => (b.getAttribute('value') || '') === value) || (named.length === 1 ? named[0] : null);
    return box ? box.checked : null;
  });
}
"""
