import Foundation

/// The fleet's status as one self-contained HTML page: inline CSS and SVG, a little vanilla JS
/// to sort and filter (the page reads without it), no network fetch (its Content-Security-Policy
/// forbids any). Every text from outside (names from Slack and W&B, labels, details) is escaped.
public enum StatusPage {
    public static func render(_ status: FleetStatus) -> String {
        var page = """
            <!doctype html>
            <html lang="en"><head><meta charset="utf-8">
            <meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; img-src data:">
            <meta name="viewport" content="width=device-width, initial-scale=1">
            <title>SlackFleet: fleet status</title>
            <style>\(css)</style></head><body>

            """
        let counts = status.counts
        page += "<header><h1>SlackFleet fleet status</h1><p>Generated \(escape(status.generatedAt)) from the database alone. "
        page += status.healthy ? "<strong class=\"good\">Every instance delivers and is fresh.</strong>" : "<strong class=\"bad\">Not everything delivers, or someone must act.</strong>"
        page += "</p><ul class=\"counts\">"
        for health in FleetStatus.Health.allCases where counts[health, default: 0] > 0 {
            page += "<li><i class=\"s-\(health.rawValue)\"></i>\(health.rawValue): <b>\(counts[health, default: 0])</b></li>"
        }
        page += "</ul></header>\n"

        page += "<section><h2>Needs a person (\(status.needsPerson.count))</h2>"
        if status.needsPerson.isEmpty {
            page += "<p>Nobody needs to do anything.</p>"
        } else {
            page += "<ol class=\"actions\">"
            for action in status.needsPerson {
                page += "<li data-instance=\"\(escape(action.instance))\"><b>\(escape(action.instance))</b>: \(escape(action.why)). Open \(link(action.link)) (\(escape(action.page)))"
                switch action.kind {
                case .connect: page += ", click Connect Slack, and pick \(escape(action.channel ?? "the channel")) in workspace \(escape(action.workspace))."
                case .regenerate: page += ", press Regenerate next to Client Secret\(action.then.map { ", then " + escape($0) } ?? "")."
                case .copySecret: page += ", copy the Client Secret\(action.then.map { ", then " + escape($0) } ?? "")."
                }
                page += "</li>"
            }
            page += "</ol>"
        }
        page += "</section>\n"

        page += "<section><h2>The fleet</h2><div class=\"grid\" role=\"img\" aria-label=\"instances coloured by state\">"
        for instance in status.instances {
            page += "<i class=\"s-\(instance.health.rawValue)\" title=\"\(escape(instance.name)): \(instance.health.rawValue)\"></i>"
        }
        page += "</div></section>\n"

        page += "<section class=\"charts\">"
        page += figure("Delivery latency (last verify-delivery)", histogram(status.instances.compactMap(\.deliverySeconds), unit: "s", bins: 12))
        page += figure("Secret age against the rotation policy (\(Int(status.rotationPolicySeconds / 86400)) days)",
                       histogram(status.instances.compactMap(\.secretAgeSeconds).map { $0 / 86400 }, unit: "d", bins: 12, line: status.rotationPolicySeconds / 86400))
        for timeline in status.tier1Timelines {
            page += figure("Tier 1 writes in \(escape(timeline.workspace)), run \(escape(String(timeline.runID.prefix(8)))), against the quota", writes(timeline))
        }
        page += figure("Audit entries per day", bars(status.auditPerDay.map { ($0.day, Double($0.count)) }))
        page += "</section>\n"

        page += "<section><h2>Workspaces</h2><table><thead><tr><th>Workspace</th><th>Name</th><th>Token expires</th><th>Apps</th><th>Pending Tier 1 writes</th><th>ETA</th><th>429s last run</th></tr></thead><tbody>"
        for workspace in status.workspaces {
            let soon = (workspace.tokenExpiresInSeconds ?? .infinity) < 6 * 3600
            page += "<tr><td>\(escape(workspace.id))</td><td>\(escape(workspace.name))</td><td class=\"\(soon ? "bad" : "")\">\(escape(workspace.tokenExpiresAt ?? "unknown"))\(workspace.tokenExpiresInSeconds.map { " (" + Runner.duration($0) + ")" } ?? "")</td>"
            page += "<td>\(workspace.apps)</td><td>\(workspace.pendingTier1Writes)</td><td>\(workspace.pendingTier1Writes == 0 ? "" : Runner.duration(workspace.pendingETASeconds))</td><td>\(workspace.rateLimitedLastRun.map(String.init) ?? "")</td></tr>"
        }
        page += "</tbody></table></section>\n"

        page += """
            <section><h2>Instances</h2><p class="filters"><label>Filter <input id="filter" type="search" placeholder="name, label, state..."></label>
            <label>State <select id="state"><option value="">any</option>
            """
        for health in FleetStatus.Health.allCases { page += "<option>\(health.rawValue)</option>" }
        // Rows as a grid of divs in chunks the browser lays out only when scrolled to
        // (content-visibility): a 10,000-row table takes Chromium seconds to lay out.
        page += "</select></label></p><div id=\"instances\" role=\"table\"><div class=\"r h\" role=\"row\">"
        for header in ["Instance", "Workspace", "App group", "State", "App", "Client ID", "Verified", "Latency", "Connection", "Rotation", "Secret age", "Last results", "Labels"] {
            page += "<span role=\"columnheader\">\(header)</span>"
        }
        page += "</div><div id=\"rows\">"
        for (index, instance) in status.instances.enumerated() {
            if index % chunk == 0 { page += index == 0 ? "<div class=\"c\">\n" : "</div><div class=\"c\">\n" }
            page += "<div class=\"r\" data-state=\"\(instance.health.rawValue)\"><span>\(escape(instance.name))</span><span>\(escape(instance.workspace))</span><span>\(escape(instance.appGroup))</span>"
            page += "<span><i class=\"s-\(instance.health.rawValue)\"></i>\(instance.health.rawValue)</span><span>\(escape(instance.appID ?? ""))</span><span>\(escape(instance.clientID ?? ""))</span>"
            page += "<span data-sort=\"\(instance.verifiedAgeSeconds.map { String(Int($0)) } ?? "")\">\(instance.verifiedAgeSeconds.map { Runner.duration($0) + " ago" } ?? "never")</span>"
            page += "<span data-sort=\"\(instance.deliverySeconds.map { String(format: "%.3f", $0) } ?? "")\">\(instance.deliverySeconds.map { String(format: "%.1f s", $0) } ?? "")</span>"
            page += "<span>\(escape(instance.connection ?? ""))</span><span>\(escape(instance.rotationStage ?? ""))</span>"
            page += "<span data-sort=\"\(instance.secretAgeSeconds.map { String(Int($0)) } ?? "")\">\(instance.secretAgeSeconds.map(Runner.duration) ?? "")</span>"
            page += "<span>\(escape(lastResults(instance.lastResults)))</span>"
            page += "<span>\(escape(instance.labels.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " ")))</span></div>\n"
        }
        if !status.instances.isEmpty { page += "</div>" }
        page += "</div></div></section>\n<script>\(script)</script></body></html>\n"
        return page
    }

    /// Rows per chunk of the instance list.
    static let chunk = 250

    /// Each job's last result, short: the ones that went through counted, the others named.
    static func lastResults(_ results: [String: FleetStatus.LastResult]) -> String {
        let fine = results.filter { ["ok", "changed"].contains($0.value.result) }
        let others = results.filter { !["ok", "changed"].contains($0.value.result) }.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value.result)" }
        return (others + (fine.isEmpty ? [] : ["\(fine.count) job\(fine.count == 1 ? "" : "s") ok"])).joined(separator: ", ")
    }

    /// Text made safe for HTML content and attribute values.
    public static func escape(_ text: String) -> String {
        var out = ""
        out.reserveCapacity(text.utf8.count)
        for character in text.unicodeScalars {
            switch character {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\"": out += "&quot;"
            case "'": out += "&#39;"
            default: out.unicodeScalars.append(character)
            }
        }
        return out
    }

    /// A link to an https page; anything else is shown as text, never followed.
    static func link(_ url: String) -> String {
        guard url.hasPrefix("https://") else { return escape(url) }
        return "<a href=\"\(escape(url))\" rel=\"noreferrer noopener\">\(escape(url))</a>"
    }

    static func figure(_ title: String, _ svg: String) -> String {
        "<figure><figcaption>\(title)</figcaption>\(svg)</figure>"
    }

    private static let width = 360.0, height = 150.0, margin = 24.0

    /// Bars of `values` in `bins` equal bins; `line`: a vertical marker at that value.
    static func histogram(_ values: [Double], unit: String, bins: Int, line: Double? = nil) -> String {
        guard let high = (values + (line.map { [$0 * 1.2] } ?? [])).max(), !values.isEmpty else { return empty }
        let top = max(high, 0.001)
        var counts = [Int](repeating: 0, count: bins)
        for value in values { counts[min(bins - 1, max(0, Int(value / top * Double(bins))))] += 1 }
        let labels = (0..<bins).map { String(format: top / Double(bins) < 1 ? "%.1f" : "%.0f", Double($0) * top / Double(bins)) + unit }
        var svg = bars(zip(labels, counts.map(Double.init)).map { ($0, $1) }, close: false)
        if let line {
            let x = margin + (width - 2 * margin) * line / top
            svg += "<line x1=\"\(fmt(x))\" y1=\"\(fmt(margin / 2))\" x2=\"\(fmt(x))\" y2=\"\(fmt(height - margin))\" class=\"policy\"/><text x=\"\(fmt(x + 3))\" y=\"\(fmt(margin))\" class=\"policy\">policy</text>"
        }
        return svg + "</svg>"
    }

    /// A bar per (label, value).
    static func bars(_ items: [(String, Double)], close: Bool = true) -> String {
        guard let high = items.map(\.1).max(), high > 0 else { return empty }
        let slot = (width - 2 * margin) / Double(items.count)
        var svg = "<svg viewBox=\"0 0 \(fmt(width)) \(fmt(height))\" width=\"\(fmt(width))\" height=\"\(fmt(height))\" role=\"img\">"
        svg += "<line x1=\"\(fmt(margin))\" y1=\"\(fmt(height - margin))\" x2=\"\(fmt(width - margin))\" y2=\"\(fmt(height - margin))\" class=\"axis\"/>"
        for (index, item) in items.enumerated() {
            let h = (height - 2 * margin) * item.1 / high
            let x = margin + Double(index) * slot
            svg += "<rect x=\"\(fmt(x + 1))\" y=\"\(fmt(height - margin - h))\" width=\"\(fmt(max(1, slot - 2)))\" height=\"\(fmt(h))\"><title>\(escape(item.0)): \(Int(item.1))</title></rect>"
        }
        svg += "<text x=\"\(fmt(margin))\" y=\"\(fmt(height - 6))\">\(escape(items.first?.0 ?? ""))</text>"
        svg += "<text x=\"\(fmt(width - margin))\" y=\"\(fmt(height - 6))\" text-anchor=\"end\">\(escape(items.last?.0 ?? ""))</text>"
        svg += "<text x=\"2\" y=\"\(fmt(margin - 6))\">\(Int(high))</text>"
        return close ? svg + "</svg>" : svg
    }

    /// Cumulative writes over the run against what the quota allows (one burst, then its rate).
    static func writes(_ timeline: FleetStatus.WriteTimeline) -> String {
        guard let last = timeline.seconds.last else { return empty }
        let span = max(last, 60)
        let total = Double(timeline.seconds.count)
        let allowedAtEnd = 1 + span * timeline.perMinute / 60
        let top = max(total, allowedAtEnd)
        func x(_ t: Double) -> Double { margin + (width - 2 * margin) * t / span }
        func y(_ n: Double) -> Double { height - margin - (height - 2 * margin) * n / top }
        var svg = "<svg viewBox=\"0 0 \(fmt(width)) \(fmt(height))\" width=\"\(fmt(width))\" height=\"\(fmt(height))\" role=\"img\">"
        svg += "<line x1=\"\(fmt(x(0)))\" y1=\"\(fmt(y(1)))\" x2=\"\(fmt(x(span)))\" y2=\"\(fmt(y(allowedAtEnd)))\" class=\"policy\"><title>Slack's Tier 1 quota: \(fmt(timeline.perMinute)) a minute</title></line>"
        var points = "\(fmt(x(0))),\(fmt(y(0)))"
        for (index, t) in timeline.seconds.enumerated() {
            points += " \(fmt(x(t))),\(fmt(y(Double(index)))) \(fmt(x(t))),\(fmt(y(Double(index + 1))))"
        }
        svg += "<polyline points=\"\(points)\" class=\"series\"><title>\(Int(total)) writes in \(Runner.duration(last))</title></polyline>"
        svg += "<text x=\"\(fmt(margin))\" y=\"\(fmt(height - 6))\">0</text><text x=\"\(fmt(width - margin))\" y=\"\(fmt(height - 6))\" text-anchor=\"end\">\(Runner.duration(span))</text>"
        svg += "<text x=\"2\" y=\"\(fmt(margin - 6))\">\(Int(top))</text></svg>"
        return svg
    }

    private static let empty = "<p class=\"none\">nothing recorded yet</p>"

    private static func fmt(_ value: Double) -> String { String(format: "%.1f", value) }

    private static let css = """
        body{font:14px/1.4 system-ui,sans-serif;margin:1.5em;color:#1d1f23;background:#fff}h1{font-size:1.4em}h2{font-size:1.15em;margin-top:1.6em}
        .good{color:#1a7f37}.bad{color:#b42318}.counts{list-style:none;padding:0;display:flex;flex-wrap:wrap;gap:1em}
        .grid{display:flex;flex-wrap:wrap;gap:2px;max-width:1200px}.grid i{width:10px;height:10px;display:block}
        i[class^=s-]{display:inline-block;width:10px;height:10px;margin-right:4px;border-radius:2px}
        .s-delivering{background:#2da44e}.s-awaiting-connect{background:#d4a72c}.s-on-retiring-app{background:#bf8700}.s-failing{background:#cf222e}
        .s-stale{background:#8c959f}.s-unverified{background:#d0d7de}.s-retiring{background:#8250df}.s-disabled{background:#eaeef2}
        table{border-collapse:collapse;font-size:12px}th,td{border-bottom:1px solid #d0d7de;padding:3px 6px;text-align:left;vertical-align:top}th{background:#f6f8fa}
        .c{content-visibility:auto;contain-intrinsic-size:auto 9000px}.r{display:grid;grid-template-columns:110px 80px 90px 125px 100px 170px 70px 55px 110px 120px 70px 150px 1fr;border-bottom:1px solid #d0d7de;font-size:12px}
        .r span{padding:2px 4px;overflow-wrap:anywhere}.r.h{background:#f6f8fa;font-weight:600;position:sticky;top:0}.r.h span{cursor:pointer}.charts{display:flex;flex-wrap:wrap;gap:1.5em}
        figure{margin:0}figcaption{font-weight:600;margin-bottom:.3em}svg rect{fill:#0969da}svg text{font-size:10px;fill:#57606a}
        .axis{stroke:#8c959f}.policy{stroke:#cf222e;fill:#cf222e;stroke-dasharray:4 3}.series{fill:none;stroke:#0969da;stroke-width:2}
        .none{color:#57606a}.actions li{margin-bottom:.4em}.grid i[class^=s-]{width:8px;height:8px;margin:0;border-radius:1px}
        """

    private static let script = """
        (function(){var list=document.getElementById('rows');if(!list)return;var f=document.getElementById('filter'),s=document.getElementById('state');
        function rows(){return Array.prototype.slice.call(list.querySelectorAll('.r'));}
        function apply(){var q=f.value.toLowerCase(),w=s.value;rows().forEach(function(r){
        r.style.display=((!w||r.getAttribute('data-state')===w)&&(!q||r.textContent.toLowerCase().indexOf(q)>=0))?'':'none';});}
        f.addEventListener('input',apply);s.addEventListener('change',apply);
        var hs=document.querySelectorAll('#instances .r.h span');hs.forEach(function(h,c){var up=true;h.addEventListener('click',function(){
        var all=rows(),chunks=list.querySelectorAll('.c');function k(r){var e=r.children[c],d=e.getAttribute('data-sort');return d===null?e.textContent:(d===''?Infinity:parseFloat(d));}
        all.sort(function(x,y){var a=k(x),z=k(y);return (a<z?-1:a>z?1:0)*(up?1:-1);});up=!up;
        for(var i=0;i<all.length;i++)chunks[Math.floor(i/\(chunk))].appendChild(all[i]);});});})();
        """
}
