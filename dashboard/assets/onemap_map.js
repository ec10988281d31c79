/* onemap map functions for dash-leaflet, referenced from Python through
 * dash_extensions.javascript.Namespace("onemap", "map"). Every function reads its
 * parameters from the GeoJSON component's `hideout`, so a restyle never re-sends data.
 * User text is only ever put into the page through textContent (no HTML injection). */
/* Render probe: each data layer records when its features were last styled and, two animation
 * frames later, painted (window.__omDraw[hideout.probe] = {first, last, firstPaint, paint}, plus a
 * performance mark "onemap:paint:<probe>"). The benchmark and the browser tests read it to time
 * "map drawn with its data" independently of side panels. Costs one timestamp per feature. */
window.onemapDrawn = function (h) {
    const key = (h && (h.probe || h.layer)) || "data";
    const all = window.__omDraw = window.__omDraw || {};
    const now = performance.now();
    const d = all[key] = all[key] || {first: now, n: 0};
    d.last = now;
    d.n += 1;
    if (!d.pending) {
        d.pending = true;
        requestAnimationFrame(function () {
            requestAnimationFrame(function () {
                d.pending = false;
                d.paint = performance.now();
                if (d.firstPaint === undefined) { d.firstPaint = d.paint; }
                d.paints = (d.paints || 0) + 1;
                if (performance.mark) { performance.mark("onemap:paint:" + key); }
            });
        });
    }
};
/* Mouse events for every canvas of a map (installed once Leaflet is loaded).
 * Leaflet gives each pane its own full-size canvas when preferCanvas is set; the topmost canvas
 * then receives every mouse event and, by itself, hit-tests only its own features: the ones below
 * never got a hover (no tooltip on grids, boundaries or hexagons). Here the canvas that receives
 * an event hit-tests the features of all the map's canvases and picks the one with the highest
 * `omHit` (default: its rank) under the pointer, the latest drawn on a tie. Within a canvas the
 * draw order follows a rank (the path option `omRank`, else the z-index of the path's pane), so
 * grids draw over boundaries in the outlines pane whatever arrives first. Reference outlines
 * (boundaries, grids) hover below everything, so a hexagon or a zone over a grid shows its own
 * tooltip and the grid's shows where nothing else is. Clicks stay Leaflet's (the receiving canvas
 * only), and areas with no click action (style option `omClick: false`: hexagons, outlines,
 * zones) are not click targets, so a click there is the map's ("add a station here" on /plan).
 * Each pane keeps its own canvas: on one shared canvas a layer that changes (a filter, the
 * wall's refresh) redraws every other layer with it (measured: filter changes ~25 ms slower).
 * Circle markers take their GeoJSON's pane (pointToLayer): made there without it they fell in
 * Leaflet's overlay pane, under the zones' canvas, and could not be clicked. */
(function installRankedCanvas() {
    if (!window.L || !L.Canvas || !L.Map) {
        document.addEventListener("DOMContentLoaded", installRankedCanvas, {once: true});
        return;
    }
    const C = L.Canvas.prototype;
    if (C.__omRanked) { return; }
    C.__omRanked = true;
    /* Canvases the size of the map, not 1.2x each way (Leaflet's default padding 0.1): a page
     * opens with one canvas per pane, and every pixel is rasterised in software and copied at
     * each frame the layers change (measured: the map's first paint ~50-80 ms sooner on /plan).
     * A drag shows the edge blank until it ends, when Leaflet redraws. */
    C.options.padding = 0;
    const rankOf = function (renderer, layer) {
        const o = layer.options || {};
        if (typeof o.omRank === "number") { return o.omRank; }
        const map = renderer._map, name = o.pane || "overlayPane";
        const cache = map.__omPaneZ = map.__omPaneZ || {};
        if (cache[name] === undefined) {
            const el = map.getPane(name);
            if (!el) { return 400; }
            const z = parseFloat(el.style.zIndex || window.getComputedStyle(el).zIndex);
            cache[name] = isNaN(z) ? 400 : z;
        }
        return cache[name];
    };
    /* Links `order` after the last node of rank <= its rank (front) or before the first node of
     * its rank (back). `__omTails[rank]` is the last node of each rank, so an insertion costs one
     * pass over the few ranks, not over the features. */
    const link = function (r, order, back) {
        const tails = r.__omTails = r.__omTails || {};
        let after = null, best = -Infinity;
        Object.keys(tails).forEach(function (k) {
            const t = tails[k];
            if ((back ? t.rank < order.rank : t.rank <= order.rank) && t.rank >= best) { best = t.rank; after = t; }
        });
        order.prev = after;
        order.next = after ? after.next : r._drawFirst;
        if (order.next) { order.next.prev = order; } else { r._drawLast = order; }
        if (after) { after.next = order; } else { r._drawFirst = order; }
        if (!back || !tails[order.rank]) { tails[order.rank] = order; }
    };
    const unlink = function (r, order) {
        const tails = r.__omTails || {};
        if (tails[order.rank] === order) {
            if (order.prev && order.prev.rank === order.rank) { tails[order.rank] = order.prev; }
            else { delete tails[order.rank]; }
        }
        if (order.next) { order.next.prev = order.prev; } else { r._drawLast = order.prev; }
        if (order.prev) { order.prev.next = order.next; } else { r._drawFirst = order.next; }
        order.prev = order.next = null;
    };
    C._initPath = function (layer) {
        this._updateDashArray(layer);
        this._layers[L.Util.stamp(layer)] = layer;
        link(this, layer._order = {layer: layer, prev: null, next: null, rank: rankOf(this, layer)}, false);
    };
    C._removePath = function (layer) {
        unlink(this, layer._order);
        delete layer._order;
        delete this._layers[L.Util.stamp(layer)];
        this._requestRedraw(layer);
    };
    C._bringToFront = function (layer) {
        if (!layer._order) { return; }
        unlink(this, layer._order);
        link(this, layer._order, false);
        this._requestRedraw(layer);
    };
    C._bringToBack = function (layer) {
        if (!layer._order) { return; }
        unlink(this, layer._order);
        link(this, layer._order, true);
        this._requestRedraw(layer);
    };
    /* The map's canvas renderers (one per pane), lowest pane first: the topmost canvas receives
     * every mouse event, so it hit-tests the features of all of them. */
    const renderers = function (r) {
        const map = r._map, all = [];
        if (!map) { return [r]; }
        Object.keys(map._paneRenderers || {}).forEach(function (k) { all.push(map._paneRenderers[k]); });
        if (map._renderer) { all.push(map._renderer); }
        const list = all.filter(function (x, i) { return x && x._drawFirst !== undefined && all.indexOf(x) === i; });
        if (list.indexOf(r) < 0) { list.push(r); }
        const z = function (x) { return rankOf(x, {options: {pane: x.options.pane}}); };
        return list.sort(function (a, b) { return z(a) - z(b); });
    };
    const pick = function (r, point, accept, own) {
        let found = null, best = -Infinity;
        (own ? [r] : renderers(r)).forEach(function (each) {
            for (let o = each._drawFirst; o; o = o.next) {
                const l = o.layer;
                if (l.options.interactive && l._containsPoint(point) && (!accept || accept(l))) {
                    const h = typeof l.options.omHit === "number" ? l.options.omHit : o.rank;
                    if (h >= best) { best = h; found = l; }
                }
            }
        });
        return found;
    };
    /* Leaflet drops the moves that come within 32 ms of the last one handled, so a pointer that
     * stops fast on a feature could stay "over" what it crossed; the last dropped move is handled
     * when the 32 ms are up (a trailing call), unless the pointer has left the canvas. */
    C._handleMouseHover = function (e, point) {
        if (this._mouseHoverThrottled) { this.__omPending = [e, point]; return; }
        this.__omPending = null;
        const found = pick(this, point);
        if (found !== this._hoveredLayer) {
            this._handleMouseOut(e);
            if (found) {
                L.DomUtil.addClass(this._container, "leaflet-interactive");
                this._fireEvent([found], e, "mouseover");
                this._hoveredLayer = found;
            }
        }
        this._fireEvent(this._hoveredLayer ? [this._hoveredLayer] : false, e);
        this._mouseHoverThrottled = true;
        setTimeout(L.Util.bind(function () {
            this._mouseHoverThrottled = false;
            const next = this.__omPending, map = this._map;
            this.__omPending = null;
            if (next && map && !map._animatingZoom && !(map.dragging && map.dragging.moving())) {
                this._handleMouseHover(next[0], next[1]);
            }
        }, this), 32);
    };
    const mouseOut = C._handleMouseOut;
    C._handleMouseOut = function (e) {
        if (e && e.type === "mouseout") { this.__omPending = null; }
        return mouseOut.call(this, e);
    };
    C._onClick = function (e) {
        const map = this._map, moved = e.type === "click" || e.type === "preclick";
        const found = pick(this, map.mouseEventToLayerPoint(e), function (l) {
            return l.options.omClick !== false && (!moved || !map._draggableMoved(l));
        }, true);
        this._fireEvent(found ? [found] : false, e);
    };
})();
window.onemap = Object.assign({}, window.onemap, {
    map: {
        /* Fill colour of a point: by the value of hideout.colorBy, else the layer colour. */
        pointColor: function (props, h) {
            if (h.colorBy && h.colors && props[h.colorBy] !== undefined && h.colors[String(props[h.colorBy])]) {
                return h.colors[String(props[h.colorBy])];
            }
            return h.color;
        },
        pointToLayer: function (feature, latlng, context) {
            window.onemapDrawn(context.hideout || {});
            const h = context.hideout || {};
            const fill = window.onemap.map.pointColor(feature.properties || {}, h);
            /* in the GeoJSON's pane (the points pane, above the zones' canvas): a marker made
             * here does not inherit it, and in Leaflet's overlay pane it would sit under zones */
            return L.circleMarker(latlng, {
                radius: h.radius || 6, color: h.stroke || "#ffffff", weight: h.strokeWeight || 1.5,
                fillColor: fill, fillOpacity: h.fillOpacity || 0.9, opacity: 1, omRank: h.rank,
                pane: (context && context.pane) || "overlayPane",
            });
        },
        clusterToLayer: function (feature, latlng, index, context) {
            window.onemapDrawn(context.hideout || {});
            const h = context.hideout || {};
            const n = feature.properties.point_count;
            const size = n < 10 ? 30 : n < 100 ? 36 : n < 1000 ? 42 : 50;
            const span = document.createElement("span");
            span.textContent = feature.properties.point_count_abbreviated;
            const div = document.createElement("div");
            div.appendChild(span);
            div.style.borderColor = h.color || "#333";
            const icon = L.divIcon({
                html: div.outerHTML, className: "om-cluster" + (h.dark ? " om-cluster-dark" : ""),
                iconSize: L.point(size, size),
            });
            return L.marker(latlng, {icon: icon});
        },
        /* Hexagon aggregates: colour class from the server (log scale), palette from hideout. */
        hexStyle: function (feature, context) {
            window.onemapDrawn(context.hideout || {});
            const h = context.hideout || {};
            const pal = h.palette || ["#fde725", "#7ad151", "#22a884", "#2a788e", "#414487", "#440154"];
            const c = pal[Math.min(feature.properties.cls || 0, pal.length - 1)];
            return {fillColor: c, color: h.stroke || c, weight: h.weight || 0.6, fillOpacity: h.opacity || 0.7,
                    opacity: 0.8, omRank: h.rank, omClick: false};
        },
        polygonStyle: function (feature, context) {
            window.onemapDrawn(context.hideout || {});
            const h = context.hideout || {};
            const s = Object.assign({}, h.style || {}, {omRank: h.rank, omHit: h.hit, omClick: false});
            if (h.weightBy && feature.properties[h.weightBy] !== undefined && h.weights) {
                const w = h.weights[String(feature.properties[h.weightBy])];
                if (w !== undefined) { s.weight = w; }
            }
            return s;
        },
        roadStyle: function (feature, context) {
            window.onemapDrawn(context.hideout || {});
            const h = context.hideout || {};
            const major = feature.properties.major;
            return {color: major ? (h.major || "#8c8c8c") : (h.minor || "#c8c8c8"),
                    weight: major ? (h.majorWeight || 2.5) : (h.minorWeight || 1), opacity: 0.9,
                    interactive: false};
        },
        /* Builds a popup table from [[label, value], ...] with textContent only. */
        detailsTable: function (title, rows) {
            const root = document.createElement("div");
            root.className = "om-popup";
            const head = document.createElement("div");
            head.className = "om-popup-title";
            head.textContent = title;
            root.appendChild(head);
            const table = document.createElement("table");
            (rows || []).forEach(function (r) {
                const tr = document.createElement("tr");
                const th = document.createElement("th");
                th.textContent = String(r[0]);
                const td = document.createElement("td");
                td.textContent = String(r[1]);
                tr.appendChild(th);
                tr.appendChild(td);
                table.appendChild(tr);
            });
            root.appendChild(table);
            return root;
        },
        /* Tooltips and popups are bound lazily, on a feature's first hover or click, by one handler
         * on its GeoJSON layer (eventHandlers) instead of a tooltip object and its listeners per
         * feature while the map opens. Labels go in through textContent only. */
        _label: function (text) {
            const tip = document.createElement("span");
            tip.textContent = String(text);
            return tip;
        },
        _hovered: function (e) {
            const layer = e.propagatedFrom || e.layer;
            return layer && layer.feature && !layer.getTooltip() ? layer : null;
        },
        _openTip: function (layer, content, e, sticky) {
            if (content === null || content === undefined) { return; }
            layer.bindTooltip(content, {sticky: sticky});
            layer.openTooltip(sticky ? e.latlng : undefined);
        },
        pointLabel: function (p) {
            const label = p.name || p.category || p.kind || p.id;
            return label === undefined || label === null ? null : window.onemap.map._label(label);
        },
        hoverPoint: function (e, ctx) {
            const M = window.onemap.map, layer = M._hovered(e);
            if (!layer || (layer.feature.properties || {}).cluster) { return; }
            M._openTip(layer, M.pointLabel(layer.feature.properties || {}), e, false);
        },
        /* A point's popup fetches its details on the first click (all fields, escaped as text). */
        clickPoint: function (e, ctx) {
            const layer = e.propagatedFrom || e.layer;
            const p = (layer && layer.feature && layer.feature.properties) || {};
            if (!layer || p.cluster || layer.getPopup()) { return; }
            const h = (ctx && ctx.hideout) || {};
            /* one box per feature, filled once (a content function would run again on every
             * popup.update() and fetch again) */
            const box = document.createElement("div");
            box.className = "om-popup";
            box.textContent = h.loading || "…";
            layer.bindPopup(box, {maxWidth: 360});
            const url = "/api/feature/" + encodeURIComponent(h.layer) + "/" + encodeURIComponent(p.id) +
                "?lang=" + encodeURIComponent(h.lang || "zh");
            fetch(url).then(function (r) { return r.json(); }).then(function (d) {
                box.textContent = "";
                if (d.error) { box.textContent = h.failed || d.error; return; }
                box.appendChild(window.onemap.map.detailsTable(d.title, d.rows));
                layer.getPopup() && layer.getPopup().update();
            }).catch(function () { box.textContent = h.failed || "error"; });
            layer.openPopup();
        },
        /* Zones (isochrones, first-due areas, blind spots, Gi* bins): colour by a property. */
        zoneStyle: function (feature, context) {
            window.onemapDrawn(context.hideout || {});
            const h = context.hideout || {};
            const p = feature.properties || {};
            let c = h.color || "#0072B2";
            if (h.key && h.colors && h.colors[String(p[h.key])] !== undefined) { c = h.colors[String(p[h.key])]; }
            else if (h.palette && p.ci !== undefined) { c = h.palette[p.ci % h.palette.length]; }
            const hidden = h.hide && h.hide.indexOf(String(p[h.key])) >= 0;
            return {fillColor: c, color: h.stroke || c, weight: h.weight === undefined ? 1 : h.weight,
                    fillOpacity: hidden ? 0 : (h.opacity === undefined ? 0.3 : h.opacity),
                    opacity: hidden ? 0 : 0.9, dashArray: h.dash || null, omClick: false};
        },
        zoneLabel: function (p, h) {
            const label = h.labelKey ? p[h.labelKey] : null;
            if (label === undefined || label === null) { return null; }
            return window.onemap.map._label((h.labelPrefix || "") + String(label) + (h.labelSuffix || ""));
        },
        hoverZone: function (e, ctx) {
            const M = window.onemap.map, layer = M._hovered(e);
            if (layer) { M._openTip(layer, M.zoneLabel(layer.feature.properties || {}, (ctx && ctx.hideout) || {}), e, true); }
        },
        /* Suggested sites: a numbered square marker. */
        sitePoint: function (feature, latlng, context) {
            const h = context.hideout || {};
            const span = document.createElement("span");
            span.textContent = String(feature.properties.rank);
            const icon = L.divIcon({html: span.outerHTML, className: "om-site", iconSize: L.point(26, 26)});
            return L.marker(latlng, {icon: icon, title: h.title || ""});
        },
        /* A dragged scenario station reports its new position to Dash. */
        dragEnd: function (e, ctx) {
            const ll = e.target.getLatLng();
            ctx.setProps({position: [ll.lat, ll.lng]});
        },
        /* Index of the polygon of a MultiPolygon feature under a point (ray casting on the outer
         * rings, in the feature's own coordinates: the display CRS), or -1. */
        partAt: function (feature, latlng) {
            const g = feature.geometry || {}, x = latlng.lng, y = latlng.lat;
            const polys = g.type === "MultiPolygon" ? g.coordinates : g.type === "Polygon" ? [g.coordinates] : [];
            for (let i = 0; i < polys.length; i++) {
                const ring = polys[i][0];
                let inside = false;
                for (let a = 0, b = ring.length - 1; a < ring.length; b = a++) {
                    const xa = ring[a][0], ya = ring[a][1], xb = ring[b][0], yb = ring[b][1];
                    if ((ya > y) !== (yb > y) && x < (xb - xa) * (y - ya) / (yb - ya) + xa) { inside = !inside; }
                }
                if (inside) { return i; }
            }
            return -1;
        },
        /* Hexagons come merged by colour class (one MultiPolygon per class, `counts` per polygon):
         * the tooltip shows the count of the hexagon under the pointer and follows it. */
        hoverHex: function (e, ctx) {
            const M = window.onemap.map, layer = e.propagatedFrom || e.layer;
            if (!layer || !layer.feature || !e.latlng) { return; }
            const p = layer.feature.properties || {};
            let n = p.count;
            if (p.counts) {
                const i = M.partAt(layer.feature, e.latlng);
                if (i < 0) { M._followTip(layer, null, e); return; }
                n = p.counts[i];
            }
            const text = ((ctx && ctx.hideout) || {}).tooltip || "{n}";
            M._followTip(layer, text.replace("{n}", String(n)), e);
        },
        /* Outlines come merged by level (one MultiPolygon, `name`/`id` lists per polygon): the
         * tooltip names the area under the pointer and follows it (a plain feature: its own name). */
        polygonText: function (feature, latlng) {
            const p = feature.properties || {};
            let name = p.name, id = p.id;
            if (Array.isArray(name) || Array.isArray(id)) {
                const i = window.onemap.map.partAt(feature, latlng);
                if (i < 0) { return null; }
                name = Array.isArray(name) ? name[i] : name;
                id = Array.isArray(id) ? id[i] : id;
            }
            const label = name || id;
            return label === undefined || label === null ? null : String(label);
        },
        hoverPolygon: function (e, ctx) {
            const M = window.onemap.map, layer = e.propagatedFrom || e.layer;
            if (!layer || !layer.feature || !e.latlng) { return; }
            M._followTip(layer, M.polygonText(layer.feature, e.latlng), e);
        },
        /* A sticky tooltip whose text follows the pointer over a merged feature's polygons. */
        _followTip: function (layer, label, e) {
            const M = window.onemap.map, tip = layer.getTooltip();
            if (label === null) { if (tip && layer.isTooltipOpen()) { layer.closeTooltip(); } return; }
            if (!tip) { M._openTip(layer, M._label(label), e, true); layer.getTooltip().__omText = label; return; }
            if (tip.__omText !== label) { tip.setContent(M._label(label)); tip.__omText = label; }
            if (!layer.isTooltipOpen()) { layer.openTooltip(e.latlng); }
        },
    },
});

window.dash_clientside = Object.assign({}, window.dash_clientside, {
    onemap: {
        /* A deferred box (dashboard/components/deferred.py): its contents, once the map has
         * painted; filled once (a later signal must not reset what the user has set in it). */
        deferredTree: function (painted, tree, current) {
            const filled = Array.isArray(current) ? current.length > 0 : !!current;
            return filled ? window.dash_clientside.no_update : tree;
        },
        /* Resolves once the map's data layers named in `probes` have painted (or after 4 s), so
         * heavy side panels are fetched and rendered after the map, never before it. */
        afterMapPaint: function (trigger, probes) {
            if (probes === undefined && Array.isArray(trigger)) { probes = trigger; }
            return new Promise(function (resolve) {
                const t0 = performance.now();
                (function check() {
                    const d = window.__omDraw || {};
                    const done = (probes || []).every(function (k) { return d[k] && d[k].firstPaint !== undefined; });
                    if (done || performance.now() - t0 > 4000) { resolve(performance.now()); return; }
                    setTimeout(check, 50);
                })();
            });
        },
        /* /plan filters → the map's filter store {layer: {f: {field: [values]}, start, end}};
         * the end day is inclusive in the picker, exclusive in the store. */
        planFilters: function (values, start, end, ids, layer, filters) {
            const chosen = {};
            (ids || []).forEach(function (id, i) {
                const v = values[i];
                if (v && v.length) { chosen[id.field] = v; }
            });
            let endExcl = null;
            if (end) {
                const d = new Date(String(end).slice(0, 10) + "T00:00:00Z");
                endExcl = new Date(d.getTime() + 86400000).toISOString().slice(0, 10);
            }
            const out = Object.assign({}, filters || {});
            if (Object.keys(chosen).length || start || endExcl) {
                out[layer] = {f: chosen, start: start ? String(start).slice(0, 10) : null, end: endExcl};
            } else {
                delete out[layer];  /* no filter: the layer's entry goes (the opening URLs have none) */
            }
            if (JSON.stringify(out) === JSON.stringify(filters || {})) { return window.dash_clientside.no_update; }
            return out;
        },
        /* Fit the district into the map once it is laid out. */
        /* Data URLs of the map's layers for the current viewport, filters and snapshot. */
        layerUrls: function (bounds, zoom, filters, version, overlays, layers, initial, names, opening) {
            const nu = window.dash_clientside.no_update;
            /* URLs last sent per output, starting from the layout's: an unchanged URL is not re-sent
             * (the layers control reports its overlays as it mounts; that must not touch the layers). */
            const src = JSON.stringify(opening || {});
            const memo = window.__omUrls = (window.__omUrls && window.__omUrls.src === src) ? window.__omUrls
                : {src: src, urls: Object.assign({}, opening || {})};
            const fresh = function (key, u) {
                if (u === nu || memo.urls[key] === u) { return nu; }
                memo.urls[key] = u;
                return u;
            };
            const bb = bounds || initial;
            if (!bb || zoom === undefined || zoom === null) {
                return layers.map(function () { return nu; }).concat(layers.map(function () { return nu; }), [nu]);
            }
            const s = bb[0][0], w = bb[0][1], n = bb[1][0], e = bb[1][1];
            const padX = (e - w) * 0.1, padY = (n - s) * 0.1;
            const r = function (x) { return x.toFixed(4); };
            const box = [r(w - padX), r(s - padY), r(e + padX), r(n + padY)].join(",");
            const z = Math.round(zoom);
            const v = version || 0;
            const shown = overlays || [];
            const url = function (layer, want) {
                /* an unchecked layer fetches nothing (its group is off the map; it keeps what it had) */
                if (names && names[layer] && shown.indexOf(names[layer]) < 0) { return nu; }
                const f = (filters || {})[layer] || {};
                let q = "bbox=" + box + "&zoom=" + z + "&v=" + v;
                if (f.f && Object.keys(f.f).length) { q += "&f=" + encodeURIComponent(JSON.stringify(f.f)); }
                if (f.start) { q += "&start=" + encodeURIComponent(f.start); }
                if (f.end) { q += "&end=" + encodeURIComponent(f.end); }
                return "/api/layer/" + layer + "/" + want + ".geojson?" + q;
            };
            return layers.map(function (l) { return fresh("hex:" + l, url(l, "hex")); })
                .concat(layers.map(function (l) { return fresh("points:" + l, url(l, "points")); }),
                        [fresh("roads", "/api/roads.geojson?bbox=" + box + "&zoom=" + z + "&v=" + v)]);
        },
    },
});
