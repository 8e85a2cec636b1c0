// The contract between a worker slot and whatever runs its items: the handler protocol and its factory.

import Foundation

/// Why one attempt at an item failed. The broker retries the item, then dead-letters it with this message.
public struct StageFailure: Error, Sendable, Equatable, CustomStringConvertible {
    /// What went wrong, in one sentence that names the stage or the program.
    public var message: String
    /// The recent standard error of the program that failed, for exec stages (at most 4 KiB, its tail).
    public var stderr: String?
    /// In a chain: the member stage that failed; nil for a stage that runs alone.
    public var stage: String?

    public init(_ message: String, stderr: String? = nil, stage: String? = nil) {
        self.message = message
        self.stderr = stderr
        self.stage = stage
    }

    public var description: String {
        guard let stderr, !stderr.isEmpty else { return message }
        return "\(message)\nstderr:\n\(stderr)"
    }
}

/// One item as a handler sees it: its payload and what the broker sent along with it.
///
/// The metadata is what the item header carries (see `ItemHeader`); a field is nil or empty
/// where the path that delivered the item does not carry it.
public struct StageItem: Sendable, Equatable {
    public var payload: [UInt8]
    /// The item's stable id, the same on every attempt.
    public var id: UInt64?
    /// 1 for the first attempt, 2 for the first retry, ...
    public var attempt: Int?
    /// The group-by key; empty when the stage has none.
    public var key: [UInt8]
    public var priority: Int
    /// Milliseconds since the Unix epoch after which the item is dead-lettered; nil: none.
    public var deadline: UInt64?
    /// W3C trace context; empty when not traced.
    public var traceparent: [UInt8]

    public init(
        payload: [UInt8], id: UInt64? = nil, attempt: Int? = nil, key: [UInt8] = [], priority: Int = 0,
        deadline: UInt64? = nil, traceparent: [UInt8] = []
    ) {
        self.payload = payload
        self.id = id
        self.attempt = attempt
        self.key = key
        self.priority = priority
        self.deadline = deadline
        self.traceparent = traceparent
    }

    /// An item as a REQUEST delivered it, with every field of its header.
    public init(_ item: RequestBatch.Item) {
        self.init(
            payload: item.payload, id: item.header.id, attempt: Int(item.header.attempt), key: item.header.key,
            priority: Int(item.header.priority), deadline: item.header.deadline == 0 ? nil : item.header.deadline,
            traceparent: item.header.traceparent)
    }
}

/// What runs the items of one slot of a stage: one item in, zero or more items out.
///
/// One handler exists per slot and is used by one thread at a time, so it may keep
/// state (a child process, a compiled regular expression) without locks.
public protocol StageHandler: AnyObject {
    /// Processes one item; returns its outputs (empty: filtered).
    /// Throws for a failed attempt (the broker retries, then dead-letters).
    func process(_ item: StageItem) throws(StageFailure) -> [[UInt8]]
    /// Releases children and resources; called once when the slot stops.
    func close()
}

/// A stage written in Swift and registered with a worker under the stage's name: the item's
/// payload in, its outputs out. Any error it throws fails the attempt; a `StageFailure` is
/// passed on as it is.
public typealias SwiftStageFunction = @Sendable ([UInt8]) throws -> [[UInt8]]

/// Whether a worker can serve a stage, and if not, why.
public enum StageAvailability: Sendable, Equatable {
    case available
    case unavailable(reason: String)

    public var isAvailable: Bool {
        if case .available = self { return true }
        return false
    }
}

/// Makes handlers for stages, and says which stages this worker can serve.
public enum StageHandlers {
    /// Why this worker can or cannot serve `stage`.
    ///
    /// - A builtin is available when `OperatorRegistry` has it and its options are valid.
    /// - An exec stage is available when its command resolves: an absolute path, a path
    ///   relative to its working directory, or a name on `PATH`. On a remote worker this is
    ///   that machine's own filesystem and `PATH`; a worker has already replaced the arguments that
    ///   name files shipped by the broker with its cached copies (``StageFileCache``).
    /// - An external stage is available only if a Swift function is registered under the stage's name.
    ///
    /// - Parameter workingDirectory: the worker's directory; exec working directories are relative to it.
    public static func availability(
        of stage: StageSpec, swiftFunctions: [String: SwiftStageFunction], workingDirectory: String
    ) -> StageAvailability {
        switch stage.handler {
        case .builtin(let name, let options):
            do {
                _ = try OperatorRegistry.spec(named: name, stageName: stage.name)
                    .makeHandler(options: options, stageName: stage.name)
                return .available
            } catch {
                return .unavailable(reason: error.message)
            }
        case .exec(let exec):
            switch ResolvedCommand.resolve(exec, stageName: stage.name, workerDirectory: workingDirectory) {
            case .success: return .available
            case .failure(let failure): return .unavailable(reason: failure.message)
            }
        case .external:
            if swiftFunctions[stage.name] != nil { return .available }
            return .unavailable(
                reason: "stage '\(stage.name)' is external and no Swift function is registered under that name")
        }
    }

    /// How costly `stage`'s items are: a builtin's registered cost; exec and Swift stages may
    /// take any time, so they count as blocking. An unknown builtin is never served, so blocking too.
    public static func cost(of stage: StageSpec) -> OperatorCost {
        guard case .builtin(let name, _) = stage.handler else { return .blocking }
        return OperatorRegistry.spec(named: name)?.cost ?? .blocking
    }

    /// Makes a handler for one slot of `stage`. Exec stream children start lazily, on the first item.
    public static func make(
        for stage: StageSpec, swiftFunctions: [String: SwiftStageFunction], workingDirectory: String
    ) throws(StageFailure) -> any StageHandler {
        switch stage.handler {
        case .builtin(let name, let options):
            return try OperatorRegistry.spec(named: name, stageName: stage.name)
                .makeHandler(options: options, stageName: stage.name)
        case .exec(let exec):
            let command = try ResolvedCommand.resolve(exec, stageName: stage.name, workerDirectory: workingDirectory)
                .get()
            // A child that exits while we write to it must fail the attempt, not kill the worker.
            signal(SIGPIPE, SIG_IGN)
            switch exec.mode {
            case .stream:
                return ExecStreamHandler(
                    stageName: stage.name, command: command, output: exec.output, timeout: stage.timeout)
            case .perItem:
                return ExecPerItemHandler(
                    stageName: stage.name, command: command, output: exec.output, timeout: stage.timeout)
            }
        case .external:
            guard let function = swiftFunctions[stage.name] else {
                throw StageFailure(
                    "stage '\(stage.name)' is external and no Swift function is registered under that name")
            }
            return SwiftFunctionHandler(stageName: stage.name, function: function)
        }
    }
}

/// Runs a registered Swift function.
final class SwiftFunctionHandler: StageHandler {
    private let stageName: String
    private let function: SwiftStageFunction

    init(stageName: String, function: @escaping SwiftStageFunction) {
        self.stageName = stageName
        self.function = function
    }

    func process(_ item: StageItem) throws(StageFailure) -> [[UInt8]] {
        do {
            return try function(item.payload)
        } catch let failure as StageFailure {
            throw failure
        } catch {
            throw StageFailure("stage '\(stageName)': \(error)")
        }
    }

    func close() {}
}

@available(*, unavailable) extension SwiftFunctionHandler: Sendable {}
