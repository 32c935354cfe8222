// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";

import {CloseReason} from "../src/SessionTypes.sol";

interface IWalletEntry {
    function sync() external;
    function sweep() external;
    function close(CloseReason reason) external;
    function withdraw(uint256 amount) external;
    function execute(address target, bytes calldata data, uint256 amount) external;
}

/// @notice Hostile target: during `execute` it calls back into the calling wallet.
/// mode 0: sync, 1: sweep, 2: close(StopLoss), 3: execute(self), 4: withdraw.
contract ReentrantTarget {
    function attack(uint8 mode) external {
        IWalletEntry wallet = IWalletEntry(msg.sender);
        if (mode == 0) wallet.sync();
        else if (mode == 1) wallet.sweep();
        else if (mode == 2) wallet.close(CloseReason.StopLoss);
        else if (mode == 3) wallet.execute(address(this), abi.encodeCall(this.attack, (0)), 0);
        else wallet.withdraw(1);
    }
}

/// @notice Hostile target: tries to take more than it was approved for.
contract OverPullTarget {
    IERC20 public immutable token;

    constructor(IERC20 token_) {
        token = token_;
    }

    /// Pull `amount` + 1 in one go.
    function pullExtra(uint256 amount) external {
        token.transferFrom(msg.sender, address(this), amount + 1);
    }

    /// Pull `amount`, then try again for 1 more.
    function pullTwice(uint256 amount) external {
        token.transferFrom(msg.sender, address(this), amount);
        token.transferFrom(msg.sender, address(this), 1);
    }

    /// Pull nothing, so that a left-over allowance would be visible afterwards.
    function pullNothing() external {}

    /// Pull part of the approval; the rest must not stay approved.
    function pullPart(uint256 amount) external {
        token.transferFrom(msg.sender, address(this), amount);
    }
}
