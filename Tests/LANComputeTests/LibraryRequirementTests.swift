// The oldest libzmq the engine accepts, and the one-line error for an older one.

import Testing
import ZeroMQ
@testable import LANCompute

@Suite struct LibraryRequirementTests {
    @Test func versionsBefore433AreRefusedWithLC2085() throws {
        for version in [(4, 3, 2), (4, 2, 9), (3, 9, 99), (4, 0, 0)] {
            let problem = try #require(LibraryRequirement.problem(version: version))
            #expect(problem.code == .libzmqTooOld)
            #expect(problem.description.hasPrefix("LC2085: libzmq \(version.0).\(version.1).\(version.2) is older than 4.3.3"))
            #expect(!problem.description.contains("\n"))
        }
    }

    @Test func versionsFrom433OnAreAccepted() {
        for version in [(4, 3, 3), (4, 3, 5), (4, 4, 0), (5, 0, 0)] {
            #expect(LibraryRequirement.problem(version: version) == nil)
        }
        // The library the tests run with is one the engine accepts.
        #expect(LibraryRequirement.problem() == nil, "libzmq \(ZMQLibrary.versionString)")
    }
}
