// The `fail` builtin: fails every attempt, to exercise retries and dead letters.

extension OperatorSpec {
    static let fail = OperatorSpec(
        name: "fail", summary: "fails every attempt (for testing retries and dead-lettering)",
        options: [OperatorOption("message", .text)]
    ) { options in
        let message = options.text("message") ?? "failed by the fail builtin"
        return { _ throws(StageFailure) in throw StageFailure(message) }
    }
}
