import Foundation

/// Work started on another thread at once; `value()` waits for it. What the work uses it holds
/// itself, so a run that fails first may leave it to finish on its own.
final class Pending<Value: Sendable>: @unchecked Sendable {
    private let done = DispatchGroup()
    private var result: Result<Value, any Error>?

    init(_ work: @escaping @Sendable () throws -> Value) {
        done.enter()
        DispatchQueue.global().async { [self] in
            result = Result { try work() }
            done.leave()
        }
    }

    func value() throws -> Value {
        done.wait()
        guard let result else { throw FleetError.failed("background work ended without a result") }
        return try result.get()
    }
}

/// Slots filled by several lanes; also hands out the next index to work on.
final class OrderedResults<Value: Sendable>: @unchecked Sendable {
    private let lock = NSLock()
    private var slots: [Value?]
    private var cursor = 0

    init(count: Int) {
        slots = Array(repeating: nil, count: count)
    }

    func set(_ index: Int, _ value: Value) {
        lock.lock()
        slots[index] = value
        lock.unlock()
    }

    func take(limit: Int) -> Int? {
        lock.lock()
        defer { lock.unlock() }
        guard cursor < limit else { return nil }
        cursor += 1
        return cursor - 1
    }

    func all() -> [Value] {
        lock.lock()
        defer { lock.unlock() }
        return slots.compactMap { $0 }
    }
}
