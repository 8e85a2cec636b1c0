// Temporary: the stage handler contract until the stage layer lands.
import Foundation

public struct StageFailure: Error, Sendable, Equatable, CustomStringConvertible {
    public var message: String
    public var stderr: String?
    public init(_ message: String, stderr: String? = nil) {
        self.message = message
        self.stderr = stderr
    }
    public var description: String { message }
}

public protocol StageHandler: AnyObject {
    func process(_ item: [UInt8]) throws(StageFailure) -> [[UInt8]]
    func close()
}

public typealias SwiftStageFunction = @Sendable ([UInt8]) throws -> [[UInt8]]

public enum StageAvailability: Sendable, Equatable {
    case available
    case unavailable(reason: String)
}

final class ClosureHandler: StageHandler {
    let body: SwiftStageFunction
    init(_ body: @escaping SwiftStageFunction) { self.body = body }
    func process(_ item: [UInt8]) throws(StageFailure) -> [[UInt8]] {
        do { return try body(item) } catch { throw StageFailure("\(error)") }
    }
    func close() {}
}

public enum StageHandlers {
    public static func availability(of stage: StageSpec, swiftFunctions: [String: SwiftStageFunction], workingDirectory: String) -> StageAvailability {
        switch stage.handler {
        case .builtin(let name, _):
            return ["identity", "upper", "lower", "split-words", "fail"].contains(name) ? .available : .unavailable(reason: "unknown builtin")
        case .exec: return .unavailable(reason: "exec not ready")
        case .external: return swiftFunctions[stage.name] != nil ? .available : .unavailable(reason: "no Swift function")
        }
    }

    public static func make(for stage: StageSpec, swiftFunctions: [String: SwiftStageFunction], workingDirectory: String) throws(StageFailure) -> any StageHandler {
        switch stage.handler {
        case .builtin(let name, _):
            switch name {
            case "identity": return ClosureHandler { [$0] }
            case "upper": return ClosureHandler { [Array(String(decoding: $0, as: UTF8.self).uppercased().utf8)] }
            case "lower": return ClosureHandler { [Array(String(decoding: $0, as: UTF8.self).lowercased().utf8)] }
            case "fail": return ClosureHandler { _ in throw StageFailure("failed by the fail builtin") }
            case "split-words":
                return ClosureHandler { item in
                    String(decoding: item, as: UTF8.self).lowercased()
                        .split { !($0.isLetter || $0.isNumber) }.map { Array($0.utf8) }
                }
            default: throw StageFailure("unknown builtin")
            }
        case .exec: throw StageFailure("exec not ready")
        case .external:
            guard let function = swiftFunctions[stage.name] else { throw StageFailure("no Swift function") }
            return ClosureHandler(function)
        }
    }
}
