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
        // While each member gives one output, it goes on to the next as the item's payload, with
        // no array gathered around it: the common case (map-like members) allocates only what
        // the members themselves return.
        var next = item
        var position = 0
        var items: [[UInt8]]
        while true {
            let outputs = try run(members[position], next)
            position += 1
            if position == members.count { return outputs }
            guard outputs.count == 1 else {
                items = outputs
                break
            }
            next.payload = outputs[0]
        }
        // A member gave several outputs (or none): each is an item of the members after it.
        while position < members.count, !items.isEmpty {
            var outputs: [[UInt8]] = []
            outputs.reserveCapacity(items.count)
            for payload in items {
                next.payload = payload
                outputs += try run(members[position], next)
            }
            items = outputs
            position += 1
        }
        return items
    }

    /// One member on one item; its failure names the member.
    private func run(_ member: (name: String, handler: any StageHandler), _ item: StageItem) throws(StageFailure) -> [[UInt8]] {
        do {
            return try member.handler.process(item)
        } catch {
            throw StageFailure(error.message, stderr: error.stderr, stage: error.stage ?? member.name)
        }
    }

    func close() {
        for member in members { member.handler.close() }
    }
}

@available(*, unavailable) extension ChainHandler: Sendable {}
