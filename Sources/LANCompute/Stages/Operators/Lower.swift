// The `lower` builtin: lowercases text.

extension OperatorSpec {
    static let lower = OperatorSpec(name: "lower", summary: "lowercases the item (Unicode)") { _ in
        { item in [Array(String(decoding: item.payload, as: UTF8.self).lowercased().utf8)] }
    }
}
