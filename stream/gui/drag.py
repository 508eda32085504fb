"""Drag a box on the frame: the browser half (a script) and the message it sends to the page's Python.

Gradio's image has a select (click) event but no drag event, and the issue asks for "drag a
box". So the page loads :data:`DRAG_JS` once (``demo.load(js=...)``). It watches pointer
events on ``#cf-frame img``: a press, a move of at least :data:`THRESHOLD_PX` CSS pixels and a
release make a drag; less movement stays a plain click, handled by the image's select event
in every mode (so the 2-click box, which keyboard and touch users need, keeps working; touch
presses are left alone, as a finger's drag scrolls the page). While dragging it draws a rubber
band over the image. On release it maps both ends to the frame pixels under the pointer (the
image is drawn centred in its element and scaled to fit, never enlarged: Gradio's
``object-fit: scale-down``; the scale comes from naturalWidth/Height, the element's box and
its object-fit), clamps them to the frame and writes ``"x0,y0,x1,y1 #n"`` into the hidden
textbox ``#cf-drag``, announcing it with an ``input`` DOM event. Gradio then fires the
textbox's change event, whose handler calls ``Session.box`` (the path the 2-click box takes).
``#n`` is a counter: dragging the same box twice still changes the value, so the event fires.
(Gradio rounds a click's position where this floors: the two may differ by a pixel.)

The browser follows a drag's release with a click on the image, which would also add a point
through the select event; a capture-phase listener on the window swallows that one click
before Gradio's (delegated) handler sees it. Escape during a drag drops it.
"""

from __future__ import annotations

import math

from cleanfeed.errors import PromptError

ELEM_ID = "cf-drag"
"""The hidden textbox the script writes the dragged box into."""

THRESHOLD_PX = 4
"""Movement (CSS pixels) below which a press and release is a click, not a drag."""

DRAG_JS = """
() => {
  if (window.__cleanfeedDrag) return;
  window.__cleanfeedDrag = true;
  const THRESHOLD = __THRESHOLD__;
  let drag = null;      // {x, y, img, band, moved, cancelled}
  let swallow = false;  // the click the browser fires after a drag's release
  let sent = 0;

  const frameImg = (t) => (t instanceof Element ? t.closest('#cf-frame img') : null);

  // Where the frame is drawn inside the img element, and its scale (CSS px per frame pixel).
  function layout(img) {
    const r = img.getBoundingClientRect();
    const nw = img.naturalWidth, nh = img.naturalHeight;
    const fit = getComputedStyle(img).objectFit;
    let sx, sy;
    if (fit === 'fill') { sx = r.width / nw; sy = r.height / nh; }  // CSS's default: stretched to the box
    else if (fit === 'none') { sx = sy = 1; }
    else if (fit === 'cover') { sx = sy = Math.max(r.width / nw, r.height / nh); }
    else if (fit === 'contain') { sx = sy = Math.min(r.width / nw, r.height / nh); }
    else { sx = sy = Math.min(r.width / nw, r.height / nh, 1); }  // scale-down
    return {nw, nh, sx, sy, left: r.left + (r.width - nw * sx) / 2, top: r.top + (r.height - nh * sy) / 2};
  }

  function toPixel(l, cx, cy) {
    const x = Math.floor((cx - l.left) / l.sx), y = Math.floor((cy - l.top) / l.sy);  // the pixel under the pointer
    return [Math.min(Math.max(x, 0), l.nw - 1), Math.min(Math.max(y, 0), l.nh - 1)];
  }

  const shown = (d) => {  // the frame shown now: a page update may have replaced the img since the press
    const img = document.querySelector('#cf-frame img');
    return img && img.naturalWidth ? img : d.img;
  };

  function drawBand(d, cx, cy) {
    const img = shown(d);
    const l = img.naturalWidth ? layout(img) : {left: -Infinity, top: -Infinity, nw: Infinity, nh: Infinity, sx: 1, sy: 1};
    const right = l.left + l.nw * l.sx, bottom = l.top + l.nh * l.sy;
    const clampX = (v) => Math.min(Math.max(v, l.left), right), clampY = (v) => Math.min(Math.max(v, l.top), bottom);
    const x0 = clampX(Math.min(d.x, cx)), x1 = clampX(Math.max(d.x, cx));
    const y0 = clampY(Math.min(d.y, cy)), y1 = clampY(Math.max(d.y, cy));
    Object.assign(d.band.style, {left: x0 + 'px', top: y0 + 'px', width: (x1 - x0) + 'px', height: (y1 - y0) + 'px'});
  }

  function send(text) {
    const box = document.querySelector('#__ELEM__ textarea, #__ELEM__ input');
    if (!box) { console.warn('cleanfeed: #__ELEM__ is missing; the drag is lost'); return; }
    const proto = box instanceof HTMLTextAreaElement ? HTMLTextAreaElement.prototype : HTMLInputElement.prototype;
    Object.getOwnPropertyDescriptor(proto, 'value').set.call(box, text);
    box.dispatchEvent(new Event('input', {bubbles: true}));
  }

  function end() {
    if (drag && drag.band) drag.band.remove();
    drag = null;
  }

  document.addEventListener('pointerdown', (e) => {
    swallow = false;
    const img = frameImg(e.target);
    if (!img || e.button !== 0 || e.pointerType === 'touch') return;
    end();
    drag = {x: e.clientX, y: e.clientY, img, band: null, moved: false, cancelled: false};
  }, true);

  document.addEventListener('dragstart', (e) => {  // an img is draggable: that would end the pointer events
    if (frameImg(e.target)) e.preventDefault();
  }, true);

  document.addEventListener('pointermove', (e) => {
    if (!drag || drag.cancelled) return;
    if (!drag.moved && Math.hypot(e.clientX - drag.x, e.clientY - drag.y) < THRESHOLD) return;
    if (!drag.moved) {
      drag.moved = true;
      drag.band = document.createElement('div');
      drag.band.id = 'cf-drag-band';
      Object.assign(drag.band.style, {position: 'fixed', zIndex: 1000, pointerEvents: 'none',
        border: '2px dashed #ffeb3b', outline: '1px solid rgba(0,0,0,0.6)', background: 'rgba(255,235,59,0.12)'});
      document.body.appendChild(drag.band);
    }
    drawBand(drag, e.clientX, e.clientY);
    e.preventDefault();  // no text selection while dragging
  }, true);

  document.addEventListener('pointerup', (e) => {
    if (!drag) return;
    const d = drag;
    end();
    if (!d.moved) return;  // a click: the image's select event handles it
    swallow = true;
    setTimeout(() => { swallow = false; }, 400);
    if (d.cancelled) return;
    const [cx, cy] = [e.clientX, e.clientY];
    const map = (img) => {
      const l = layout(img);
      const [x0, y0] = toPixel(l, d.x, d.y), [x1, y1] = toPixel(l, cx, cy);
      sent += 1;
      send(`${x0},${y0},${x1},${y1} #${sent}`);
    };
    const img = shown(d);
    if (img.naturalWidth) map(img);
    else img.addEventListener('load', () => map(img), {once: true});  // still loading: its size comes with it
  }, true);

  document.addEventListener('pointercancel', end, true);

  document.addEventListener('keydown', (e) => {
    if (e.key === 'Escape' && drag && drag.moved) {
      drag.cancelled = true;
      if (drag.band) { drag.band.remove(); drag.band = null; }
    }
  }, true);

  window.addEventListener('click', (e) => {
    if (!swallow) return;
    swallow = false;
    e.stopImmediatePropagation();
    e.preventDefault();
  }, true);
}
""".replace("__THRESHOLD__", str(THRESHOLD_PX)).replace("__ELEM__", ELEM_ID)


def parse_drag(text: str | None) -> tuple[float, float, float, float] | None:
    """The two corner pixels the script sent (``"x0,y0,x1,y1 #n"``), or None for an empty value."""
    body = (text or "").split("#", 1)[0].strip()
    if not body:
        return None
    parts = body.split(",")
    try:
        values = tuple(float(p) for p in parts)
    except ValueError:
        values = ()
    if len(values) != 4 or not all(math.isfinite(v) for v in values):
        raise PromptError(f"a dragged box must be x0,y0,x1,y1 in pixels, got {body!r}")
    return values  # type: ignore[return-value]
