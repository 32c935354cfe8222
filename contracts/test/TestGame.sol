// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";

/// @notice Test double: a game whose outcome the test decides. `play` pulls the wager from
/// the caller; a win pays the wager times `multiplierBps / 10_000` back in the same call, a
/// loss keeps the wager. Fund it by minting tokens to it.
contract TestGame {
    using SafeERC20 for IERC20;

    event Played(address indexed player, uint256 wager, bool win, uint256 payout);

    IERC20 public immutable token;
    bool public nextWin;
    uint256 public multiplierBps = 20_000;

    constructor(IERC20 token_) {
        token = token_;
    }

    function setOutcome(bool win, uint256 multiplierBps_) external {
        nextWin = win;
        multiplierBps = multiplierBps_;
    }

    function play(uint256 wager) external returns (uint256 payout) {
        token.safeTransferFrom(msg.sender, address(this), wager);
        if (nextWin) {
            payout = (wager * multiplierBps) / 10_000;
            token.safeTransfer(msg.sender, payout);
        }
        emit Played(msg.sender, wager, nextWin, payout);
    }
}
