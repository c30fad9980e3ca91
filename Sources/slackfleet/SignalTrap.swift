import ArgumentParser
import Foundation
import Logging
import SlackFleetCore

#if canImport(Glibc)
import Glibc
#endif

/// SIGINT and SIGTERM ask the run to stop: nothing new starts, in-flight steps end or are
/// marked interrupted, and the exit code is 130 or 143.
final class SignalTrap: @unchecked Sendable {
    private var sources: [DispatchSourceSignal] = []

    init(control: RunControl) {
        for (number, reason) in [(SIGINT, RunControl.Stop.interrupted), (SIGTERM, RunControl.Stop.terminated)] {
            signal(number, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: number, queue: DispatchQueue(label: "slackfleet.signals"))
            source.setEventHandler {
                control.requestStop(reason)
                Console.note("\(reason == .interrupted ? "SIGINT" : "SIGTERM"): starting nothing new; finishing the steps in flight")
            }
            source.resume()
            sources.append(source)
        }
    }

    func cancel() {
        for source in sources { source.cancel() }
        signal(SIGINT, SIG_DFL)
        signal(SIGTERM, SIG_DFL)
    }
}
