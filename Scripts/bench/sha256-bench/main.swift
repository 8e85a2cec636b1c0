// Times the sha256 builtin's hash on 1 KiB items: swift-crypto (what the builtin uses) against the hand-written implementation.
//
// Usage: sha256-bench [items per round] [rounds] [item size]
// Each round hashes the same items with each implementation in turn, the order swapped every
// round, so load from elsewhere on the machine falls on both alike. Each timed call produces
// what the builtin emits: the 64 hex digits as bytes.

import Foundation
import LANCompute

let arguments = CommandLine.arguments
let itemsPerRound = arguments.count > 1 ? Int(arguments[1])! : 200_000
let rounds = arguments.count > 2 ? Int(arguments[2])! : 5
let itemSize = arguments.count > 3 ? Int(arguments[3])! : 1024

/// The builtin's output before swift-crypto: the digest as a String, then its UTF-8.
func handWrittenHex(_ payload: [UInt8]) -> [UInt8] {
    let digits: [UInt8] = Array("0123456789abcdef".utf8)
    var text = [UInt8]()
    text.reserveCapacity(64)
    for byte in HandWrittenSHA256.hash(payload) {
        text.append(digits[Int(byte >> 4)])
        text.append(digits[Int(byte & 0x0f)])
    }
    return Array(String(decoding: text, as: UTF8.self).utf8)
}

// 256 distinct items, cycled: different data, and small enough to stay in cache as real items would not matter here.
var generator = SystemRandomNumberGenerator()
let items: [[UInt8]] = (0..<256).map { _ in (0..<itemSize).map { _ in UInt8.random(in: 0...255, using: &generator) } }
for item in items.prefix(16) where handWrittenHex(item) != SHA256.hexDigestBytes(item) {
    fatalError("the two implementations disagree")
}

func measure(_ hex: ([UInt8]) -> [UInt8]) -> Double {
    var checksum = 0
    let start = DispatchTime.now().uptimeNanoseconds
    for index in 0..<itemsPerRound {
        checksum &+= Int(hex(items[index & 255])[0])
    }
    let seconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
    precondition(checksum != -1)  // keeps the work observable
    return Double(itemsPerRound) / seconds
}

var crypto: [Double] = []
var handWritten: [Double] = []
print("items per round: \(itemsPerRound), item size: \(itemSize) B, rounds: \(rounds)")
for round in 1...rounds {
    if round % 2 == 1 {
        crypto.append(measure(SHA256.hexDigestBytes))
        handWritten.append(measure(handWrittenHex))
    } else {
        handWritten.append(measure(handWrittenHex))
        crypto.append(measure(SHA256.hexDigestBytes))
    }
    print(String(format: "round %d: swift-crypto %.0f items/s, hand-written %.0f items/s", round, crypto.last!, handWritten.last!))
}
func median(_ values: [Double]) -> Double {
    let sorted = values.sorted()
    return sorted.count % 2 == 1 ? sorted[sorted.count / 2] : (sorted[sorted.count / 2 - 1] + sorted[sorted.count / 2]) / 2
}
let cryptoMedian = median(crypto)
let handMedian = median(handWritten)
print(String(format: "median: swift-crypto %.0f items/s (%.0f MB/s), hand-written %.0f items/s (%.0f MB/s), ratio crypto/hand-written %.2fx",
             cryptoMedian, cryptoMedian * Double(itemSize) / 1e6, handMedian, handMedian * Double(itemSize) / 1e6, cryptoMedian / handMedian))
