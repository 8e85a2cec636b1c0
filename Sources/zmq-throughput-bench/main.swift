// The Swift side of Scripts/bench/zmq-throughput: PUSH/PULL over tcp://127.0.0.1 through the binding.
// It mirrors Scripts/bench/zmq_throughput.c step for step so the two rates compare the binding's
// overhead only. Usage: zmq-throughput-bench <message size> <message count>.

import Dispatch
import Foundation
import ZeroMQ

func fail(_ message: String) -> Never {
    FileHandle.standardError.write(Data("zmq-throughput-bench: \(message)\n".utf8))
    exit(1)
}

/// Sends `count` messages of `size` bytes from a second thread and returns the rate at which the
/// receiver got them, timed from the first message to the last.
func measure(size: Int, count: Int) throws -> Double {
    let context = try Context()
    let pull = try Socket(.pull, context: context)
    try pull.bind("tcp://127.0.0.1:*")
    let endpoint = try pull.lastEndpoint

    // LINGER is zero, so the sender keeps its socket open until the receiver has everything.
    let received = DispatchSemaphore(value: 0)
    let senderFinished = DispatchSemaphore(value: 0)
    let sender = Thread {
        do {
            let push = try Socket(.push, context: context)
            try push.connect(endpoint)
            let buffer = [UInt8](repeating: 0, count: size)
            for _ in 0..<count {
                try push.send(buffer)
            }
            received.wait()
            push.close()
        } catch {
            fail("sender: \(error)")
        }
        senderFinished.signal()
    }
    sender.start()

    let message = Message()
    _ = try pull.receive(into: message)
    guard message.count == size else { fail("received \(message.count) bytes, expected \(size)") }
    let clock = ContinuousClock()
    let start = clock.now
    for _ in 1..<count {
        _ = try pull.receive(into: message)
    }
    let elapsed = clock.now - start
    guard message.count == size else { fail("received \(message.count) bytes, expected \(size)") }

    received.signal()
    senderFinished.wait()
    pull.close()
    let (seconds, attoseconds) = elapsed.components
    return Double(count - 1) / (Double(seconds) + Double(attoseconds) / 1e18)
}

let arguments = CommandLine.arguments
guard arguments.count == 3, let size = Int(arguments[1]), let count = Int(arguments[2]), size >= 0, count >= 2 else {
    FileHandle.standardError.write(Data("usage: zmq-throughput-bench <message size> <message count (at least 2)>\n".utf8))
    exit(2)
}
do {
    let rate = try measure(size: size, count: count)
    print("msgs_per_sec \(Int(rate.rounded()))")
} catch {
    fail("\(error)")
}
