// The `upper` builtin: uppercases text.

extension OperatorSpec {
    static let upper = OperatorSpec(name: "upper", summary: "uppercases the item (Unicode)") { _ in
        { item in [Array(String(decoding: item.payload, as: UTF8.self).uppercased().utf8)] }
    }
}
