// Serves an event feed, as a broker would, for the tests of the commands that read one.

import Foundation
import LANCompute
import Testing
import ZeroMQ

/// A broker-side event feed on a free loopback port, for the commands that read one.
enum TestFeed {
    static func makeFeed() throws -> (EventFeed, String) {
        let socket = try Socket(.xpub)
        try socket.bind("tcp://127.0.0.1:*")
        return (try EventFeed(socket: socket), try socket.lastEndpoint)
    }
}

extension EventFeed {
    /// Services subscriptions until one more has been seen (at most 20 s).
    func awaitSubscription() throws -> Bool {
        let seen = subscriptionsSeen
        try serviceSubscriptions(until: { self.subscriptionsSeen > seen }, timeout: .seconds(20))
        return subscriptionsSeen > seen
    }

    func serviceSubscriptions(for duration: Duration) throws {
        try serviceSubscriptions(until: { false }, timeout: duration)
    }

    private func serviceSubscriptions(until done: () -> Bool, timeout: Duration) throws {
        let clock = ContinuousClock()
        let deadline = clock.now + timeout
        while !done() && clock.now < deadline {
            if try socket.poll(.in, timeout: .milliseconds(5)).contains(.in) { handleSubscriptions() }
        }
    }
}
