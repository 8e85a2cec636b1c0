// swift-tools-version: 6.0
import PackageDescription

// Scripts/fuzz/run sets LANCOMPUTE_FUZZ: only then are the libFuzzer targets part of the package,
// compiled with FUZZING so that libFuzzer's main drives them (see Docs/security.md, Fuzzing).
let fuzzing = Context.environment["LANCOMPUTE_FUZZ"] != nil

// Release builds leave out the run-time exclusivity checks (debug builds, which the tests run, keep them):
// the broker's core is classes touched by one thread, and the checks were a tenth of its time.
let releaseSettings: [SwiftSetting] = [.unsafeFlags(["-enforce-exclusivity=unchecked"], .when(configuration: .release))]

let package = Package(
    name: "LANCompute",
    platforms: [.macOS(.v15)],  // Synchronization (Atomic, Mutex) needs macOS 15
    products: [
        .library(name: "ZeroMQ", targets: ["ZeroMQ"]),
        .library(name: "LANCompute", targets: ["LANCompute"]),
        .executable(name: "lancompute", targets: ["lancompute"]),
    ],
    dependencies: [
        .package(url: "https://github.com/jpsim/Yams", from: "6.0.0"),
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.6.0"),
        .package(url: "https://github.com/HdrHistogram/hdrhistogram-swift", from: "0.1.0"),
        .package(url: "https://github.com/apple/swift-crypto", from: "4.0.0"),
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.0.0"),
    ],
    targets: [
        .systemLibrary(
            name: "CZeroMQ",
            pkgConfig: "libzmq",
            providers: [.apt(["libzmq3-dev"]), .brew(["zeromq"])]
        ),
        // Ristretto255 for pairing (CPace); libzmq links libsodium already, so it adds no library to a machine.
        .systemLibrary(
            name: "CSodium",
            pkgConfig: "libsodium",
            providers: [.apt(["libsodium-dev"]), .brew(["libsodium"])]
        ),
        // mimalloc replaces glibc's malloc in the lancompute executable on Linux (not in the libraries: a
        // program that embeds them keeps its own allocator). glibc locks an arena for every free of a
        // block another thread allocated, and every item crosses threads (Docs/performance.md). Debian's
        // package has no pkg-config file; the header is in the default include path.
        .systemLibrary(name: "CMimalloc", providers: [.apt(["libmimalloc-dev"])]),
        .target(name: "ZeroMQ", dependencies: ["CZeroMQ"], swiftSettings: releaseSettings),
        .target(
            name: "LANCompute",
            dependencies: [
                "ZeroMQ",
                "CSodium",
                .product(name: "Yams", package: "Yams"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Histogram", package: "hdrhistogram-swift"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Hummingbird", package: "hummingbird"),
            ],
            swiftSettings: releaseSettings
        ),
        .executableTarget(
            name: "lancompute",
            dependencies: [
                "LANCompute",
                "ZeroMQ",
                .target(name: "CMimalloc", condition: .when(platforms: [.linux])),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .executableTarget(name: "zmq-throughput-bench", dependencies: ["ZeroMQ"], path: "Sources/zmq-throughput-bench"),
        .executableTarget(name: "sha256-bench", dependencies: ["LANCompute"], path: "Scripts/bench/sha256-bench"),
        .executableTarget(
            name: "swift-worker-example",
            dependencies: ["LANCompute", .product(name: "Logging", package: "swift-log")],
            path: "Examples/SwiftWorker"
        ),
        .testTarget(name: "ZeroMQTests", dependencies: ["ZeroMQ"], exclude: ["Peers"]),
        .testTarget(
            name: "LANComputeTests",
            dependencies: ["LANCompute", .product(name: "HummingbirdTesting", package: "hummingbird")],
            exclude: ["Fixtures"]
        ),
        .testTarget(name: "IntegrationTests", dependencies: ["LANCompute", "ZeroMQ"], exclude: ["Peers"]),
    ]
)

if fuzzing {
    package.targets += ["FuzzWire", "FuzzTopology"].map { name in
        .executableTarget(name: name, dependencies: ["LANCompute"], path: "Scripts/fuzz/\(name)", swiftSettings: [.define("FUZZING")])
    }
}
