import Foundation
@testable import SlackFleetCore
import Testing

/// The pacer's buckets and the scheduler that hands out quota steps: the states a run goes
/// through, checked by what is handed out and in what order, never by how long it took.
@Suite("Quotas and scheduling")
struct SchedulingTests {
    /// Tier 1 at `perMinute` with a burst of `burst`; the other tiers unbounded.
    static func pacer(perMinute: Double, burst: Double = 1) -> SlackPacer {
        var quotas = SlackPacer.Quotas.slack
        for tier in SlackTier.allCases {
            quotas.perMinute[tier] = 1e9
            quotas.burst[tier] = 1e9
        }
        quotas.perMinute[.tier1] = perMinute
        quotas.burst[.tier1] = burst
        return SlackPacer(quotas: quotas)
    }

    @Test("a bucket: the burst goes at once, then nothing until the rate refills it; a refund gives one back; a 429 pauses it")
    func bucket() {
        let pacer = Self.pacer(perMinute: 1, burst: 2)
        #expect(pacer.take(workspace: "T1", tier: .tier1))
        #expect(pacer.take(workspace: "T1", tier: .tier1))
        #expect(!pacer.take(workspace: "T1", tier: .tier1), "the burst is spent")
        #expect(pacer.availableAt(workspace: "T1", tier: .tier1) > SlackPacer.now + 50, "the next one in about a minute")
        #expect(pacer.take(workspace: "T2", tier: .tier1), "another workspace has its own quota")
        pacer.refund(workspace: "T1", tier: .tier1)
        #expect(pacer.take(workspace: "T1", tier: .tier1), "a call taken and not made is given back")
        pacer.pause(workspace: "T2", tier: .tier1, seconds: 3600)
        #expect(!pacer.take(workspace: "T2", tier: .tier1))
        #expect(pacer.availableAt(workspace: "T2", tier: .tier1) > SlackPacer.now + 3500, "a 429 pauses that workspace only")
        let eta = pacer.eta(workspace: "T3", calls: 10, tier: .tier1)
        #expect(eta > 8 * 60 && eta < 8 * 60 * 1.03, "a fresh bucket: the burst at once, then 8 at the pace (2% under the quota): \(eta)")
        #expect(pacer.eta(workspace: "T2", calls: 1, tier: .tier1) > 3500, "after the pause")
    }

    @Test("the bucket counts from its first call's answer, as Slack's counts from that call's arrival: never ahead of it")
    func anchoredAtFirstAnswer() {
        let pacer = Self.pacer(perMinute: 60, burst: 2)
        #expect(pacer.take(workspace: "T1", tier: .tier1) && pacer.take(workspace: "T1", tier: .tier1))
        Thread.sleep(forTimeInterval: 0.3)  // the first call's wait and trip
        pacer.settle(workspace: "T1", tier: .tier1)
        let next = pacer.availableAt(workspace: "T1", tier: .tier1) - SlackPacer.now
        #expect(next > 0.95, "a full second (at 2% under the quota) from the answer, not from the take: \(next)")
        pacer.settle(workspace: "T1", tier: .tier1)
        #expect(pacer.availableAt(workspace: "T1", tier: .tier1) - SlackPacer.now <= next, "only once")
    }

    @Test("the share of a quota used: every call at the quota's pace is 1; calls that could have gone sooner are less")
    func utilization() {
        let pacer = Self.pacer(perMinute: 600, burst: 1)
        for _ in 0..<3 { pacer.record(workspace: "T1", tier: .tier1) }
        #expect(pacer.utilization(tier: .tier1)["T1"] ?? 0 > 0.9, "three calls at once: all within what was allowed")
        #expect(pacer.utilization(tier: .tier3).isEmpty)
    }

    @Test("a quota step goes only with its call taken; another workspace's goes meanwhile, not after")
    func quotaStepsInterleave() {
        let pacer = Self.pacer(perMinute: 60, burst: 1)
        let scheduler = QuotaScheduler(pacer: pacer, control: RunControl())
        for index in 0..<3 {
            scheduler.add(.init(group: index, workspace: "TA", tier: .tier1) { _ in .done([]) })
            scheduler.add(.init(group: 10 + index, workspace: "TB", tier: .tier1) { _ in .done([]) })
        }
        scheduler.add(.init(group: 99, workspace: "TA", tier: nil) { _ in .done([]) })
        var order: [(Int, Bool)] = []
        for _ in 0..<3 {
            guard let taken = scheduler.take() else { break }
            order.append((taken.item.group, taken.ticket != nil))
            scheduler.stepFinished()
        }
        // One write of each workspace (its burst), then the step that spends nothing, while both
        // quotas refill: no worker waits on TA's quota while TB's write could go.
        #expect(Set(order.prefix(2).map(\.0)).count == 2)
        #expect(Set(order.prefix(2).map { $0.0 < 10 ? "TA" : "TB" }) == ["TA", "TB"])
        #expect(order.prefix(2).allSatisfy { $0.1 }, "each with its quota call taken")
        #expect(order.count == 3 && order[2] == (99, false))
        #expect(!pacer.take(workspace: "TA", tier: .tier1) && !pacer.take(workspace: "TB", tier: .tier1), "the calls were taken from the quotas")
    }

    @Test("a ticket is used by the step's first call of its tier in its workspace, once")
    func ticket() {
        let ticket = QuotaTicket(workspace: "TA", tier: .tier1)
        #expect(!ticket.claim(workspace: "TB", tier: .tier1))
        #expect(!ticket.claim(workspace: "TA", tier: .tier3))
        #expect(!ticket.used)
        #expect(ticket.claim(workspace: "TA", tier: .tier1))
        #expect(!ticket.claim(workspace: "TA", tier: .tier1), "once")
        #expect(ticket.used)
    }

    @Test("a write the quota allows only after --max-duration is not started: its group is deferred, saying when it could go")
    func deadline() {
        let pacer = Self.pacer(perMinute: 1, burst: 1)
        let scheduler = QuotaScheduler(pacer: pacer, control: RunControl(maxDuration: 30))
        scheduler.add(.init(group: 0, workspace: "TA", tier: .tier1) { _ in .done([]) })
        scheduler.add(.init(group: 1, workspace: "TA", tier: .tier1) { _ in .done([]) })
        #expect(scheduler.take()?.item.group == 0, "the burst goes")
        scheduler.stepFinished()
        #expect(scheduler.take() == nil, "the next write would come after the time budget")
        #expect(scheduler.deferred[1]?.contains("could not go before --max-duration ends") == true, "\(scheduler.deferred)")
        #expect(scheduler.deferred[1]?.contains("workspace TA") == true)
    }

    @Test("the ETA: the busiest workspace's writes left at its quota")
    func eta() {
        let pacer = Self.pacer(perMinute: 60, burst: 1)
        let scheduler = QuotaScheduler(pacer: pacer, control: RunControl())
        scheduler.expectWrites(["TA": 5, "TB": 2])
        let eta = scheduler.eta() ?? 0
        #expect(eta >= 4 && eta <= 4.2, "four more writes a second apart (2% under the quota) after the first: \(eta)")
    }
}
