// Smoke checks that the binding links and moves frames.

import Testing
import ZeroMQ

@Suite struct SmokeTests {
    @Test func pushPullOverTCPLoopback() throws {
        let pull = try Socket(.pull)
        try pull.bind("tcp://127.0.0.1:*")
        let push = try Socket(.push)
        try push.connect(try pull.lastEndpoint)
        try push.send(multipart: [Array("a".utf8), [], Array("ccc".utf8)])
        try pull.set(.receiveTimeout, .seconds(5))
        #expect(try pull.receiveMultipart() == [Array("a".utf8), [], Array("ccc".utf8)])
    }
}
