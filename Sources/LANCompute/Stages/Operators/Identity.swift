// The `identity` builtin: passes each item through unchanged.

extension OperatorSpec {
    static let identity = OperatorSpec(name: "identity", summary: "passes each item through unchanged") { _ in
        { item in [item.payload] }
    }
}
