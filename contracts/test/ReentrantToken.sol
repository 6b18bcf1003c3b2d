// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

import {ERC20} from "@openzeppelin/contracts/token/ERC20/ERC20.sol";

/// @title Test only: an ERC-20 that calls back into a target while it moves tokens out of that target.
/// @notice Armed with (target, calldata), the next transfer *from* the target runs `target.call(calldata)` first,
///  the way a malicious token (or an ERC-777 hook) would re-enter a staking contract mid-payout. The call's success
///  and return data are kept so a test can see how the target answered; the transfer then proceeds normally.
contract ReentrantToken is ERC20 {
    address public target;
    bytes public payload;
    bool public attempted;
    bool public reentered;
    bytes public answer;

    constructor() ERC20("reentrant", "EVIL") {}

    function mint(address to, uint256 amount) external {
        _mint(to, amount);
    }

    function arm(address target_, bytes calldata payload_) external {
        target = target_;
        payload = payload_;
        attempted = false;
    }

    function _update(address from, address to, uint256 value) internal override {
        if (from == target && target != address(0) && !attempted) {
            attempted = true;
            (reentered, answer) = target.call(payload);
        }
        super._update(from, to, value);
    }
}
