// Runs a chain's member stages one after another in one slot: an item in, the last member's outputs out.

/// The handler of a chain (see ``ChainPlan``): each member's outputs are the next member's items, on
/// this thread, with no broker round trip between them. A member's failure fails the whole attempt
/// and names that member, so the broker retries the chain from its head and dead-letters at the
/// member; what the members before it produced is discarded with the attempt.
final class ChainHandler: StageHandler {
    private let members: [(name: String, handler: any StageHandler)]

    init(members: [(name: String, handler: any StageHandler)]) {
        precondition(!members.isEmpty, "a chain has members")
        self.members = members
    }

    func process(_ item: StageItem) throws(StageFailure) -> [[UInt8]] {
        var items = [item.payload]
        for member in members {
            var outputs: [[UInt8]] = []
            outputs.reserveCapacity(items.count)
            for payload in items {
                var next = item
                next.payload = payload
                do {
                    outputs += try member.handler.process(next)
                } catch {
                    throw StageFailure(error.message, stderr: error.stderr, stage: error.stage ?? member.name)
                }
            }
            if outputs.isEmpty { return [] }
            items = outputs
        }
        return items
    }

    func close() {
        for member in members { member.handler.close() }
    }
}

@available(*, unavailable) extension ChainHandler: Sendable {}
