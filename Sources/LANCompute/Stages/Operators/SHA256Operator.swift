// The `sha256` builtin: the hex digest of each item.

extension OperatorSpec {
    static let sha256 = OperatorSpec(
        name: "sha256", summary: "the SHA-256 of the item, as 64 lowercase hex digits"
    ) { _ in
        { item in [SHA256.hexDigestBytes(item.payload)] }
    }
}
