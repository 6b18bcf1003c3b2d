// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

import {AccessControl} from "@openzeppelin/contracts/access/AccessControl.sol";
import {ERC20} from "@openzeppelin/contracts/token/ERC20/ERC20.sol";
import {ERC20Permit} from "@openzeppelin/contracts/token/ERC20/extensions/ERC20Permit.sol";

/// @title aiprov stake token (AIPS): what publishers, challengers and auditors stake on AiprovStaking.
/// @notice ERC-20 with EIP-2612 permit, 18 decimals.
///  Mint policy: only holders of MINTER_ROLE mint, to any address, any amount; nothing else creates tokens, and
///  nothing but `burn` by a holder (and transfers to the staking contract's burn address) removes them from use.
///  The deployer (`admin`) holds DEFAULT_ADMIN_ROLE and MINTER_ROLE; it grants or revokes MINTER_ROLE, and renouncing
///  both freezes the supply for good. The staking contract never needs MINTER_ROLE: it only moves staked tokens.
contract AiprovToken is ERC20, ERC20Permit, AccessControl {
    bytes32 public constant MINTER_ROLE = keccak256("MINTER_ROLE");

    constructor(address admin) ERC20("aiprov stake", "AIPS") ERC20Permit("aiprov stake") {
        _grantRole(DEFAULT_ADMIN_ROLE, admin);
        _grantRole(MINTER_ROLE, admin);
    }

    /// @notice Create `amount` tokens for `to`; MINTER_ROLE only.
    function mint(address to, uint256 amount) external onlyRole(MINTER_ROLE) {
        _mint(to, amount);
    }

    /// @notice Destroy `amount` of the caller's tokens.
    function burn(uint256 amount) external {
        _burn(msg.sender, amount);
    }
}
