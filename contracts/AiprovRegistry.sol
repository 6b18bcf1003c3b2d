// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

/// @title aiprov registry: model version digests and transparency-log checkpoints.
/// @notice Two independent records.
///  - `register`: anyone may claim a version digest (the sha256 of an aiprov manifest) once; the first caller owns
///    it, nobody can overwrite it.
///  - `anchor`: the log operator publishes a checkpoint (origin, tree size, root) of an aiprov transparency log.
///    The tree size of an origin never shrinks, so once a root is anchored, a rewritten history cannot be
///    anchored over it. Verifiers read the `CheckpointAnchored` events, not this contract's storage.
contract AiprovRegistry {
    struct Registration {
        address owner;
        uint64 blockNumber;
        bytes32 metadataDigest;
        string uri;
    }

    struct Anchor {
        uint64 treeSize;
        uint64 blockNumber;
        bytes32 root;
    }

    /// @notice Who may anchor checkpoints: the deployer, until transferred.
    address public operator;

    mapping(bytes32 digest => Registration) private _registrations;
    mapping(bytes32 originHash => Anchor) private _anchors;

    error NotOperator(address caller, address operator);
    error ZeroAddress();
    error ZeroDigest();
    error EmptyOrigin();
    error AlreadyRegistered(bytes32 digest, address owner);
    error TreeSizeShrinks(string origin, uint64 anchored, uint64 proposed);
    error RootMismatch(string origin, uint64 treeSize, bytes32 anchored, bytes32 proposed);

    event OperatorTransferred(address indexed previousOperator, address indexed newOperator);
    event VersionRegistered(bytes32 indexed digest, address indexed owner, bytes32 metadataDigest, string uri);
    event CheckpointAnchored(bytes32 indexed originHash, string origin, uint64 treeSize, bytes32 root);

    constructor() {
        operator = msg.sender;
        emit OperatorTransferred(address(0), msg.sender);
    }

    modifier onlyOperator() {
        if (msg.sender != operator) revert NotOperator(msg.sender, operator);
        _;
    }

    /// @notice Hand the operator role to `newOperator` (e.g. when the log's anchoring key rotates).
    function transferOperator(address newOperator) external onlyOperator {
        if (newOperator == address(0)) revert ZeroAddress();
        emit OperatorTransferred(operator, newOperator);
        operator = newOperator;
    }

    /// @notice Claim `digest` (a version's manifest sha256) with its metadata digest and where to fetch it.
    function register(bytes32 digest, bytes32 metadataDigest, string calldata uri) external {
        if (digest == bytes32(0)) revert ZeroDigest();
        address owner = _registrations[digest].owner;
        if (owner != address(0)) revert AlreadyRegistered(digest, owner);
        _registrations[digest] = Registration(msg.sender, uint64(block.number), metadataDigest, uri);
        emit VersionRegistered(digest, msg.sender, metadataDigest, uri);
    }

    /// @notice Anchor a checkpoint of the log `origin`. Re-anchoring the same size needs the same root.
    function anchor(string calldata origin, uint64 treeSize, bytes32 root) external onlyOperator {
        if (bytes(origin).length == 0) revert EmptyOrigin();
        bytes32 originHash = keccak256(bytes(origin));
        Anchor storage last = _anchors[originHash];
        if (treeSize < last.treeSize) revert TreeSizeShrinks(origin, last.treeSize, treeSize);
        if (treeSize == last.treeSize && last.blockNumber != 0 && root != last.root) {
            revert RootMismatch(origin, treeSize, last.root, root);
        }
        _anchors[originHash] = Anchor(treeSize, uint64(block.number), root);
        emit CheckpointAnchored(originHash, origin, treeSize, root);
    }

    /// @notice The registration of `digest`; owner is the zero address when nobody registered it.
    function registration(bytes32 digest)
        external
        view
        returns (address owner, uint64 blockNumber, bytes32 metadataDigest, string memory uri)
    {
        Registration storage r = _registrations[digest];
        return (r.owner, r.blockNumber, r.metadataDigest, r.uri);
    }

    /// @notice The latest anchored checkpoint of `origin` (tree size 0 and block 0 when none).
    function latestAnchor(string calldata origin)
        external
        view
        returns (uint64 treeSize, uint64 blockNumber, bytes32 root)
    {
        Anchor storage a = _anchors[keccak256(bytes(origin))];
        return (a.treeSize, a.blockNumber, a.root);
    }
}
