// Helpers for feed tests: a feed bound to an ephemeral loopback port, and waiting for subscribers.

import Foundation
import LANCompute
import ZeroMQ

enum FeedHarness {
    /// An ``EventFeed`` on an XPUB bound to `tcp://127.0.0.1:*`, and the endpoint it got.
    static func makeFeed() throws -> (feed: EventFeed, endpoint: String) {
        let socket = try Socket(.xpub)
        try socket.bind("tcp://127.0.0.1:*")
        let endpoint = try socket.lastEndpoint
        return (try EventFeed(socket: socket), endpoint)
    }
}

extension EventFeed {
    /// Services subscriptions, as the broker's poll loop would, until `count` have been seen
    /// in total or `timeout` passes; returns whether they were.
    @discardableResult
    func awaitSubscriptions(_ count: Int, timeout: Duration = .seconds(10)) throws -> Bool {
        let clock = ContinuousClock()
        let deadline = clock.now + timeout
        while subscriptionsSeen < count && clock.now < deadline {
            if try socket.poll(.in, timeout: .milliseconds(10)).contains(.in) {
                handleSubscriptions()
            }
        }
        return subscriptionsSeen >= count
    }

    /// Services subscriptions for `duration`.
    func serviceSubscriptions(for duration: Duration) throws {
        let clock = ContinuousClock()
        let deadline = clock.now + duration
        while clock.now < deadline {
            if try socket.poll(.in, timeout: .milliseconds(5)).contains(.in) {
                handleSubscriptions()
            }
        }
    }
}
