// An example: a worker process whose stage handler is a Swift function, through the library API.
//
//   swift run swift-worker-example tcp://127.0.0.1:5555
//
// It serves the `reverse` stage of Topologies/mixed-workers.yaml (a stage that declares no
// handler), and every builtin stage of whatever pipeline the broker runs.

import Foundation
import LANCompute
import Logging

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

let broker = CommandLine.arguments.dropFirst().first ?? "tcp://127.0.0.1:5555"
LoggingSystem.bootstrap { label in
    var handler = StreamLogHandler.standardError(label: label)
    handler.logLevel = .info
    return handler
}

let worker = Worker(broker: broker, handlers: [
    // One item in, its characters reversed out (outputs are a list: empty filters the item out).
    "reverse": { item in
        [Array(String(decoding: item, as: UTF8.self).reversed().map(String.init).joined().utf8)]
    },
])

// Stop cleanly on Ctrl-C or SIGTERM: the worker tells the broker and returns from run().
signal(SIGINT, SIG_IGN)
signal(SIGTERM, SIG_IGN)
let signals = [SIGINT, SIGTERM].map { number in
    let source = DispatchSource.makeSignalSource(signal: number, queue: .global())
    source.setEventHandler { worker.stop() }
    source.resume()
    return source
}

do {
    try worker.run()
} catch {
    FileHandle.standardError.write(Data("swift-worker-example: \(error)\n".utf8))
    exit(1)
}
_ = signals
