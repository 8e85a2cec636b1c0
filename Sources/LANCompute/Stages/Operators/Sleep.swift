// The `sleep` builtin: waits, then passes the item on; the one builtin that blocks.

import Foundation

extension OperatorSpec {
    static let sleep = OperatorSpec(
        name: "sleep",
        summary: "waits the given duration, then passes the item through (for tests and demos)",
        options: [OperatorOption("duration", .duration, required: true)],
        // It holds its slot for the whole duration, so it must not run on a worker's I/O thread.
        cost: .blocking
    ) { options in
        guard let duration = options.duration("duration") else { preconditionFailure("validate requires 'duration'") }
        let (seconds, attoseconds) = duration.components
        let interval = Double(seconds) + Double(attoseconds) / 1e18
        return { item in
            Thread.sleep(forTimeInterval: interval)
            return [item.payload]
        }
    }
}
