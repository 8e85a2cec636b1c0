// Z85 encoding: the RFC 32 test vector, round trips, and the length and alphabet rules.

import Testing
import ZeroMQ

@Suite struct Z85Tests {
    @Test func rfcTestVector() throws {
        let bytes: [UInt8] = [0x86, 0x4F, 0xD2, 0x6F, 0xB5, 0x59, 0xF7, 0x5B]
        #expect(try Z85.encode(bytes) == "HelloWorld")
        #expect(try Z85.decode("HelloWorld") == bytes)
    }

    @Test func emptyInputRoundTrips() throws {
        #expect(try Z85.encode([UInt8]()) == "")
        #expect(try Z85.decode("") == [])
    }

    @Test(arguments: [4, 8, 32, 64, 400])
    func randomBytesRoundTrip(count: Int) throws {
        let bytes = (0..<count).map { _ in UInt8.random(in: 0...255) }
        let text = try Z85.encode(bytes)
        #expect(text.utf8.count == count / 4 * 5)
        #expect(try Z85.decode(text) == bytes)
    }

    @Test(arguments: [1, 3, 5, 31, 33])
    func encodeRejectsLengthsThatAreNotMultiplesOfFour(count: Int) {
        let error = #expect(throws: ZMQError.self) { try Z85.encode([UInt8](repeating: 1, count: count)) }
        #expect(error?.code == .invalidArgument)
        #expect(error?.operation.contains("\(count) bytes") == true)
    }

    @Test(arguments: ["Hell", "HelloWorl", "HelloWorld!", "a"])
    func decodeRejectsLengthsThatAreNotMultiplesOfFive(text: String) {
        let error = #expect(throws: ZMQError.self) { try Z85.decode(text) }
        #expect(error?.code == .invalidArgument)
    }

    @Test(arguments: ["Hello\"orld", "Hello orld", "Héllo", "Hell\u{0}World", "~~~~~"])
    func decodeRejectsCharactersOutsideTheAlphabetOrOverflow(text: String) {
        #expect(throws: ZMQError.self) { try Z85.decode(text) }
    }
}
